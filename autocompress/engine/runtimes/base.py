"""What a runtime is: a named place a compressed model runs, which turns a model and its
bit-width into a runnable session.

A runtime module imports its heavy libraries (torch, onnxruntime) inside `build`, so that the
registry, and the experiment config that takes its allowed names from it, stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from ..model import Classifier

RunFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""(input_ids, attention_mask, token_type_ids) -> float logits."""


@dataclass(frozen=True)
class Precision:
    """How a runtime executes one bit-width: display name (e.g. 'torch-bf16'), whether a fast
    kernel exists for it (False: the weights run dequantized), and a note for reports."""

    name: str
    fast_kernel: bool
    note: str

    def session(self, run: RunFn, artifact: Path | None = None) -> Session:
        return Session(self.name, run, self.fast_kernel, self.note, artifact)


@dataclass(frozen=True)
class Session:
    """A model ready to run on one runtime at one precision."""

    name: str  # display name, e.g. "torch-bf16", "onnxruntime-int8"
    run: RunFn
    fast_kernel: bool  # False when the bit-width has no fast kernel and runs dequantized
    note: str
    artifact: Path | None = None  # the file this runtime loads (ONNX), None when it runs the torch weights


@runtime_checkable
class Runtime(Protocol):
    """One runtime. Adding one is a new module with a class like this and one registry line."""

    name: str  # registry name: what the experiment config's `runtime` and the artifact record
    export_format: str  # the `export --format` value that ships what this runtime loads
    export_file: str | None  # the file an export of that format adds (None: the weights suffice)

    def precision(self, bits: int) -> Precision:
        """Display name, fast-kernel flag and note at `bits`, without building anything."""
        ...

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int) -> Session:
        """A runnable session for `model` stored at `bits`; files it needs go under `workdir`."""
        ...


def slow_note(bits: int, where: str = "fp32") -> str:
    """The note for a bit-width with no fast kernel on this CPU."""
    return f"{bits}-bit weights have no fast CPU kernel here: they run dequantized in {where} " \
           "(bytes shrink, latency does not)"
