"""Where training runs: a device the user names (`auto`, `cpu`, `cuda`, `cuda:N`), resolved against what
torch sees, and the few moves training needs to run there.

Training (the teacher's fine-tuning and logits, distillation, recovery, the elastic network, QAT) runs on
the resolved device; every model it hands back is on the CPU again, where it is stored and measured. The
device changes how fast a model trains, never where it is measured or what its cache key is.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from .errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: the experiment's config checks names without it
    import torch
    from torch import nn

SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def check_spec(spec: str) -> str:
    """`spec` when it is a device name this module resolves; else ValueError naming the accepted forms."""
    if not isinstance(spec, str) or not SPEC.match(spec):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N (N a GPU index), got {spec!r}")
    return spec


def resolve(spec: str = "auto") -> torch.device:
    """The torch device `spec` names: `auto` is the first CUDA device when torch sees one, else the CPU.
    A CUDA device torch does not see is a one-line ConfigError."""
    import torch

    check_spec(spec)
    if spec == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = "this torch is a CPU build" if torch.version.cuda is None else "torch sees no CUDA device"
        raise ConfigError(f"device '{spec}': {why}; use --device cpu (or auto), or install torch's CUDA build")
    index = int(spec.split(":")[1]) if ":" in spec else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device '{spec}': torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}; "
                          "pick one of those")
    return torch.device("cuda", index)


def bf16_autocast(device: torch.device, precision: str) -> bool:
    """Whether training's forward passes run under bfloat16 autocast: `bf16` asks for it anywhere; `auto`
    takes it on a CUDA device that supports bf16 (Ampere and later) and not on the CPU; `fp32` never."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return precision == "bf16"


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on `device` when `bf16`, else nothing. Master weights, gradients, optimizer state
    and the loss stay float32 (the loop computes its loss on `.float()` logits)."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's tensors on `device` (a no-op on the CPU)."""
    import torch

    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@contextlib.contextmanager
def placed(device: torch.device, *models: nn.Module | None) -> Iterator[None]:
    """Move the models (None skipped) to `device` for the block, and back to the CPU after it, also when it
    raises: what a caller gets back is always on the CPU."""
    moved = [m for m in models if m is not None]
    if device.type == "cpu":
        yield
        return
    try:
        for m in moved:
            m.to(device)
        yield
    finally:
        for m in moved:
            m.to("cpu")


def describe(device: torch.device) -> str:
    """The device as a log line names it: `cpu`, or `cuda:0 (NVIDIA H200)`."""
    import torch

    if device.type != "cuda":
        return str(device)
    return f"{device} ({torch.cuda.get_device_name(device)})"


def for_training(spec: str, precision: str) -> tuple[str, bool]:
    """(the torch device name `spec` resolves to, whether training there runs under bfloat16 autocast)."""
    on = resolve(spec)
    return str(on), bf16_autocast(on, precision)


def label(device: str, bf16: bool) -> str:
    """Where something trained, as results record it: `cpu`, `cuda:0 bf16`."""
    return device + (" bf16" if bf16 else "")
