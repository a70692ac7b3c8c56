"""Local worker processes on one prepared study: what `autocompress search --workers N` starts.

Each worker is `autocompress worker ...` in its own process (its own torch threads and Optuna
sampler); they share the study through its storage. Workers end when this process ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..log import Log


def worker_command(experiment: Path, study: str, storage: str, out: Path, seed: int, name: str,
                   tracking_uri: str | None, threads: int | None = None, device: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "autocompress.cli", "worker", str(Path(experiment).resolve()), "--study", study,
           "--storage", storage, "--out", str(Path(out).resolve()), "--seed", str(seed), "--name", name]
    cmd += ["--threads", str(threads)] if threads else []
    cmd += ["--device", device] if device else []
    return cmd + (["--tracking-uri", tracking_uri] if tracking_uri else ["--no-tracking"])


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to the worker when the process that started it dies (even by kill -9)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_workers(commands: list[list[str]], log: Log) -> list[int]:
    """Start every command, wait for all; returns their exit codes. Ctrl-C or SIGTERM stops them all (SIGTERM
    to each, which ends its trial as a stopped worker does), then goes on up."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent if os.name == "posix" else None)
             for cmd in commands]
    log(f"search: started {len(procs)} worker processes (pids {', '.join(str(p.pid) for p in procs)})")
    try:
        return [p.wait() for p in procs]
    except BaseException:  # Ctrl-C or SIGTERM (`stopping.Stopped`): the workers stop too, each cleanly
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
