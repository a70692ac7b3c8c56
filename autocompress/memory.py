"""The memory a compressed model takes once loaded and run, measured in a fresh process.

`resident_memory(folder, threads)` starts `python -c SCRIPT`, which imports every runtime library
(torch, onnxruntime, openvino, transformers' tokenizer loader, autocompress's loader) and records its
resident set size (VmRSS) as the baseline; then it loads the model with `load_compressed` and runs one
batch of 32 texts of 64 tokens. It reports, in bytes, what the process holds after minus the baseline
(`resident`) and its peak resident size minus the baseline (`peak`): what the model itself adds, not the
libraries every model shares. Linux only: both sizes are read from /proc/self/status in one read
(VmRSS, and VmHWM, the peak getrusage reports as ru_maxrss), and the peak is reset after the imports
where the kernel allows it (/proc/self/clear_refs), so it is the peak of loading and running alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .engine.errors import ArtifactError

BATCH, LENGTH = 32, 64
"""The batch the model runs once before its memory is read: 32 texts of 64 tokens."""

SCRIPT = f"""
import json, sys
from pathlib import Path
import torch, onnxruntime, openvino  # every runtime library loaded before the baseline
from transformers import AutoTokenizer
from autocompress.engine.runtimes import get
from autocompress.engine.errors import AutocompressError
from autocompress.export import load_compressed

def sizes():  # (resident, peak resident) bytes of this process, from one read of /proc/self/status
    with open('/proc/self/status') as f:
        kib = dict(ln.split(':', 1) for ln in f if ln.startswith(('VmRSS', 'VmHWM')))
    return tuple(int(kib[k].split()[0]) * 1024 for k in ('VmRSS', 'VmHWM'))

kind, where, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = sizes()[0]
try:  # the peak so far was the imports': start it again from here
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
except OSError:
    pass
try:
    if kind == "folder":  # what a user of an exported model gets
        model = load_compressed(where, threads=threads)
        run, vocab = model.run, len(model.tokenizer)
    else:  # a runtime's own files (a peer): runtime name and bits follow
        run, vocab = get(sys.argv[4]).open(Path(where), int(sys.argv[5]), threads).run, 30522
except (AutocompressError, FileNotFoundError, ValueError) as err:
    print(f"error: {{str(err).splitlines()[0] if str(err) else type(err).__name__}}", file=sys.stderr)
    sys.exit(2)
torch.manual_seed(0)
ids = torch.randint(min(1000, vocab // 2), min(2000, vocab), ({BATCH}, {LENGTH}))
run(ids, torch.ones_like(ids), torch.zeros_like(ids))
resident, peak = sizes()
print(json.dumps({{"resident": resident - base, "peak": peak - base}}))
"""


def resident_memory(folder: str | Path, threads: int, runtime: tuple[str, int] | None = None,
                    timeout: float = 600.0) -> dict[str, int]:
    """{"resident": bytes, "peak": bytes} the model in `folder` adds to a fresh process once loaded and
    run on one batch of 32 texts of 64 tokens on `threads` threads (see the module's docstring).

    `folder`: what `load_compressed` opens (an export or a trial folder); with `runtime` (registry name,
    bits), a folder of that runtime's own files, opened by the runtime alone. ArtifactError with a
    one-line reason when the process fails or says nothing readable.
    """
    where = Path(folder)
    args = (["runtime", str(where), str(threads), runtime[0], str(runtime[1])] if runtime
            else ["folder", str(where), str(threads)])
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True,
                              check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"{where}: memory not measured (the process ran past {timeout:.0f} s)") from None
    if proc.returncode != 0:
        raise ArtifactError(f"{where}: memory not measured ({_last_line(proc.stderr) or f'exit {proc.returncode}'})")
    try:
        measured = json.loads(_last_line(proc.stdout))
        return {"resident": int(measured["resident"]), "peak": int(measured["peak"])}
    except (ValueError, KeyError, TypeError):
        raise ArtifactError(f"{where}: memory not measured (unreadable report {_last_line(proc.stdout)!r})") from None


def _last_line(text: str) -> str:
    """The last non-empty line of a process's output ('' when none), without an 'error: ' prefix."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1].removeprefix("error: ") if lines else ""
