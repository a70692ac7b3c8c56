"""Torch on a CUDA GPU, eager: for users who serve on GPUs.

fp32 at 32 bits; bfloat16 at 16 bits (float16 on a GPU without bf16); narrower weights have no GPU kernel in
torch eager, so they run dequantized in that half precision (bytes shrink, latency does not). A call moves its
inputs to the GPU and brings the logits back to the CPU: the copy back waits for every queued kernel, so a
timed call covers the whole computation (`measure.latency_ms` adds the warm-up runs). Like torch on the CPU,
it deploys no file of its own: the packed weights file is what ships.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..widths import width_name
from .base import Batch, Precision, Session, expanded_deploys
from .torch_eager import TorchEager

if TYPE_CHECKING:
    from ..model import Classifier

HALF = "bfloat16 (float16 on a GPU without bf16)"


class TorchCuda(TorchEager):
    """The model's own torch module on the first CUDA device torch sees (CUDA_VISIBLE_DEVICES picks it). What it
    deploys, opens and exports is torch's (the packed weights file); where and at what precision it runs is its own."""

    name = "torch-cuda"
    device = "cuda"

    def precision(self, bits: int) -> Precision:
        if bits == 32:
            return Precision("torch-cuda-fp32", True, "fp32 eager on the GPU", "stored: fp32 weights; in memory: fp32 on the GPU")
        if bits == 16:
            return Precision("torch-cuda-bf16", True, f"{HALF} eager on the GPU",
                             "stored: bf16 weights; in memory: bf16 on the GPU")
        return Precision("torch-cuda-bf16", False,
                         f"{width_name(bits)} weights have no GPU kernel in torch eager: they run dequantized in "
                         f"{HALF} (bytes shrink, latency does not)", expanded_deploys(bits, "bf16 on the GPU"))

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int,
              calibration: Sequence[Batch] = ()) -> Session:
        return cuda_runtime(model, bits)


def cuda_runtime(model: Classifier, bits: int) -> Session:
    """Run a copy of `model` eagerly on the GPU at its bit-width's precision (ConfigError without a GPU)."""
    import torch

    from ..device import resolve

    device = resolve("cuda")
    spec = TorchCuda().precision(bits)
    gpu = copy.deepcopy(model).eval().to(device)
    if bits != 32:
        gpu = gpu.to(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    @torch.inference_mode()
    def run(input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        tt = token_type_ids.to(device, non_blocking=True) if token_type_ids is not None else None
        out = gpu(input_ids.to(device, non_blocking=True), attention_mask.to(device, non_blocking=True), tt)
        return out.float().cpu()  # waits for the GPU: the call ends when the logits are back

    return spec.session(run)
