"""What a runtime is: a named place a compressed model runs, which turns a model and its
bit-width into a runnable session, writes the files it deploys, and opens them again.

A runtime module imports its heavy libraries (torch, onnxruntime, openvino) inside its functions,
so that the registry, and the experiment config that takes its allowed names from it, stay cheap
to import.

Two kinds of deployment:
* deployed files: `build` writes the runtime's own files (`export_files`, e.g. model.onnx) into
  its workdir; a session's `files` name them; `open` runs them again without the model.
* expanded at load: the packed weights file is what is deployed (`files == ()`); at load the
  weights are expanded to a precision this CPU runs fast (int8, bf16) and the session is built
  from them (`build` again, never `open`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..widths import width_name

if TYPE_CHECKING:
    import torch

    from ..model import Classifier

RunFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""(input_ids, attention_mask, token_type_ids) int64 [batch, seq] -> float32 outputs: [batch, width] (a
class's logits, a regression's score, an embedding), or [batch, seq, labels] for a per-token task."""

Batch = Mapping[str, "torch.Tensor"]
"""One calibration batch: "input_ids", "attention_mask", "token_type_ids" (int64 [batch, seq])."""

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def int64_feeds(batch: Batch, names: Sequence[str] = INPUTS) -> dict[str, Any]:
    """A batch as the contiguous int64 numpy arrays ONNX Runtime and OpenVINO take, by input name: the
    inputs the graph has (`names`; a family whose forward takes no token types has no such input)."""
    import numpy as np

    return {k: np.ascontiguousarray(batch[k].cpu().numpy(), dtype=np.int64) for k in names}


def _as_files(files: object) -> tuple[Path, ...]:
    if files is None:
        return ()
    if isinstance(files, (str, Path)):
        return (Path(files),)
    return tuple(Path(f) for f in files)  # type: ignore[union-attr]


@dataclass(frozen=True)
class Session:
    """A model ready to run on one runtime at one precision."""

    name: str  # display name of what runs in memory, e.g. "torch-bf16", "onnxruntime-int8"
    run: RunFn
    fast_kernel: bool  # False when the bit-width has no fast kernel and runs dequantized
    note: str
    files: tuple[Path, ...] = field(default=())  # deployed files it runs; () = the packed weights are deployed

    def __post_init__(self) -> None:  # accepts a single path or None (the v1 `artifact` argument)
        object.__setattr__(self, "files", _as_files(self.files))

    @property
    def artifact(self) -> Path | None:
        """The first deployed file, None when the weights file is what is deployed (v1 name)."""
        return self.files[0] if self.files else None


@dataclass(frozen=True)
class Precision:
    """How a runtime executes one bit-width: display name (e.g. 'torch-bf16'), whether a fast
    kernel exists for it (False: the weights run dequantized), a note for reports, and what is
    deployed (on disk) versus what runs (in memory)."""

    name: str
    fast_kernel: bool
    note: str
    deploys: str = ""

    def session(self, run: RunFn, files: Sequence[Path] | Path | None = ()) -> Session:
        return Session(self.name, run, self.fast_kernel, self.note, _as_files(files))


@runtime_checkable
class Runtime(Protocol):
    """One runtime. Adding one is a new module with a class like this and one registry line."""

    name: str  # registry name: what the experiment config's `runtime` and the artifact record
    export_format: str  # the `export --format` value that ships what this runtime loads
    export_files: tuple[str, ...]  # names of the files `build` deploys into its workdir (() : the weights)
    device: str  # where it runs and is timed: "cpu", or "cuda" (a GPU torch sees)

    @property
    def export_file(self) -> str | None:
        """v1 name: the first export file, None when the weights suffice."""
        ...

    def precision(self, bits: int) -> Precision:
        """Display name, fast-kernel flag, note and deployment at `bits`, without building anything."""
        ...

    def needs_calibration(self, bits: int) -> bool:
        """True when `build` at `bits` needs calibration batches (static activation ranges)."""
        ...

    def deploys_files(self, bits: int) -> bool:
        """True when `build` at `bits` writes `export_files` (False: the packed weights are deployed)."""
        ...

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int,
              calibration: Sequence[Batch] = ()) -> Session:
        """A runnable session for `model` stored at `bits`; deployed files are written into `workdir`.
        ValueError when the bit-width needs calibration batches and none are given."""
        ...

    def open(self, workdir: Path, bits: int, threads: int) -> Session:
        """Run the files `build` deployed into `workdir` at `bits`, without the model.
        FileNotFoundError naming the missing file, or when nothing is deployed at `bits`."""
        ...


class RuntimeBase:
    """Shared plumbing for runtime classes: the v1 `export_file` alias and the default checks."""

    name: str
    export_format: str
    export_files: tuple[str, ...] = ()
    device: str = "cpu"

    @property
    def export_file(self) -> str | None:
        return self.export_files[0] if self.export_files else None

    def needs_calibration(self, bits: int) -> bool:
        return False

    def deployed(self, workdir: Path, bits: int) -> tuple[Path, ...]:
        """The deployed files in `workdir` at `bits`; FileNotFoundError when one is missing or
        when this runtime deploys no file at `bits` (the packed weights are expanded at load)."""
        if not self.deploys_files(bits):
            raise FileNotFoundError(
                f"{self.name} deploys no file at {bits} bits: the packed weights are expanded at load "
                "(build the session from the model instead)")
        files = tuple(Path(workdir) / name for name in self.export_files)
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"{self.name}: missing deployed file {path}")
        return files

    def deploys_files(self, bits: int) -> bool:
        """True when `build` at `bits` writes `export_files` (False: expanded at load, or none at all)."""
        return bool(self.export_files)

    def check_calibration(self, bits: int, calibration: Sequence[Batch]) -> None:
        if self.needs_calibration(bits) and len(calibration) == 0:
            raise ValueError(f"{self.name} at {bits} bits needs calibration rows (static int8 activation "
                             "ranges): pass calibration batches")


def slow_note(bits: int, where: str = "fp32") -> str:
    """The note for a bit-width with no fast kernel on this CPU."""
    return f"{width_name(bits)} weights have no fast CPU kernel here: they run dequantized in {where} " \
           "(bytes shrink, latency does not)"


def expanded_deploys(bits: int, to: str) -> str:
    """The `deploys` phrase of a bit-width stored packed and expanded at load."""
    return f"stored: packed {width_name(bits)} weights; in memory: {to} (expanded at load)"


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def has_bf16() -> bool:
    """True when this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX BF16)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def has_amx_int8() -> bool:
    """True when this CPU has AMX int8 tiles (int8 matmuls beyond AVX-512 VNNI)."""
    return "amx_int8" in cpu_flags()


def has_vnni() -> bool:
    """True when this CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX int8)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def int8_needs_reduced_range() -> bool:
    """True on an x86 CPU without int8 dot products (e.g. AVX2 only): its u8 x s8 multiply-adds (VPMADDUBSW)
    saturate their 16-bit pair sums, so int8 runtimes built here quantize weights to 7 bits (ONNX Runtime's
    `reduce_range`, NNCF's overflow fix on every layer). Off where the flags are unknown (not x86 Linux)."""
    flags = cpu_flags()
    return "avx2" in flags and not has_vnni()
