"""Torch eager: fp32; bfloat16 at 16 bits; dynamic int8 linears (per-channel weights) at 8 bits.

Measured on this kind of CPU (see DESIGN notes): bf16 eager and dynamic int8 are faster than
fp32; 4/2/1-bit weights have no fast kernel, so they run dequantized in fp32. Torch deploys no
file of its own: the packed weights file is what ships, and the session is built from it at load.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Batch, Precision, RuntimeBase, Session, expanded_deploys, slow_note

if TYPE_CHECKING:
    from ..model import Classifier


class TorchEager(RuntimeBase):
    """The model's own torch module, run eagerly (threads follow torch's setting)."""

    name = "torch"
    export_format = "torch"
    export_files: tuple[str, ...] = ()

    def precision(self, bits: int) -> Precision:
        if bits == 16:
            return Precision("torch-bf16", True, "bfloat16 eager (AMX/AVX-512 bf16)",
                             "stored: bf16 weights; in memory: bf16")
        if bits == 8:
            return Precision("torch-int8-dynamic", True,
                             "torch dynamic int8 linears (per-channel weights, dynamic activations)",
                             expanded_deploys(8, "torch int8 linears"))
        if bits == 32:
            return Precision("torch-fp32", True, "fp32 eager", "stored: fp32 weights; in memory: fp32")
        return Precision("torch-fp32", False, slow_note(bits), expanded_deploys(bits, "fp32"))

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int,
              calibration: Sequence[Batch] = ()) -> Session:
        return torch_runtime(model, bits)

    def open(self, workdir: Path, bits: int, threads: int) -> Session:
        raise FileNotFoundError(f"{self.name} deploys no file of its own at {bits} bits: the packed weights file is "
                                "what ships (build the session from the model instead)")

    def deploys_files(self, bits: int) -> bool:
        return False


def torch_runtime(model: Classifier, bits: int) -> Session:
    """Run a copy of `model` eagerly at the precision its bit-width has a kernel for."""
    import torch
    from torch import nn

    spec = TorchEager().precision(bits)
    model = copy.deepcopy(model).eval()
    if bits == 16:
        half = model.to(torch.bfloat16)
        return spec.session(lambda i, m, t: half(i, m, t).float())
    if bits == 8:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import (
                per_channel_dynamic_qconfig,
                quantize_dynamic,
            )

            qmodel = quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        return spec.session(lambda i, m, t: qmodel(i, m, t))
    return spec.session(lambda i, m, t: model(i, m, t))
