"""The runtimes a compressed model can be measured and served on, and the one registry that
the engine, the experiment config, the export and the CLI ask.

Adding a runtime: a module with a class satisfying `Runtime` (see base.py) and one line below.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .base import (
    Batch,
    Precision,
    RunFn,
    Runtime,
    Session,
    cpu_flags,
    has_amx_int8,
    has_bf16,
)
from .onnx_runtime import OnnxRuntime
from .onnx_static import OnnxStatic
from .openvino_runtime import OpenVino
from .torch_cuda import TorchCuda
from .torch_eager import TorchEager

if TYPE_CHECKING:
    from ..model import Classifier

RUNTIMES: dict[str, Runtime] = {
    TorchEager.name: TorchEager(),
    OnnxRuntime.name: OnnxRuntime(),
    OnnxStatic.name: OnnxStatic(),
    OpenVino.name: OpenVino(),
    TorchCuda.name: TorchCuda(),
}


def names() -> tuple[str, ...]:
    """Registry names, in registry order (what the experiment config's `runtime` accepts)."""
    return tuple(RUNTIMES)


def get(name: str) -> Runtime:
    """The runtime registered as `name`; ValueError naming the choices otherwise."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown runtime '{name}'; use one of {', '.join(RUNTIMES)}") from None


def make_runtime(model: Classifier, bits: int, target: str, workdir: Path, threads: int,
                 calibration: Sequence[Batch] = ()) -> Session:
    """Build a session of `model` at `bits` on the runtime registered as `target`; its deployed
    files (if any) are written into `workdir`. `calibration`: batches for static int8 ranges."""
    return get(target).build(model, bits, workdir, threads, calibration)


def open_runtime(target: str, workdir: Path, bits: int, threads: int) -> Session:
    """Run the files `target` deployed into `workdir` at `bits` (FileNotFoundError when absent)."""
    return get(target).open(workdir, bits, threads)


def export_formats() -> tuple[str, ...]:
    """The values `export --format` accepts, in registry order (each runtime's export format)."""
    return tuple(dict.fromkeys(rt.export_format for rt in RUNTIMES.values()))


def for_format(fmt: str) -> Runtime:
    """The first registered runtime whose export format is `fmt`; ValueError naming the choices."""
    for rt in RUNTIMES.values():
        if rt.export_format == fmt:
            return rt
    raise ValueError(f"unknown export format '{fmt}'; use one of {', '.join(export_formats())}")


__all__ = ["RUNTIMES", "Batch", "OnnxRuntime", "OnnxStatic", "OpenVino", "Precision", "RunFn", "Runtime", "Session",
           "TorchCuda", "TorchEager", "cpu_flags", "export_formats", "for_format", "get", "has_amx_int8", "has_bf16",
           "make_runtime", "names", "open_runtime"]
