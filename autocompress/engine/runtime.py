"""The runtime a compressed model is measured on: torch eager (fp32 / bf16 / dynamic int8) or
ONNX Runtime (fp32 / dynamic int8).

Which paths are fast on this kind of CPU was measured (see DESIGN notes): bf16 eager and int8
(torch dynamic, better ONNX Runtime dynamic) are faster than fp32; 4/2/1-bit weights have no
fast CPU kernel here, so they run dequantized in fp32: they save bytes, not time.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .model import Classifier

RunFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
RUNTIMES = ("torch", "onnxruntime")


@dataclass
class Runtime:
    name: str  # e.g. "torch-bf16", "onnxruntime-int8"
    run: RunFn  # (input_ids, attention_mask, token_type_ids) -> float logits
    fast_kernel: bool  # False when the bit-width has no fast kernel and runs dequantized
    note: str
    artifact: Path | None = None  # the file this runtime loads (ONNX), if not the torch weights


class _Plain(nn.Module):
    """Positional forward for export: (input_ids, attention_mask, token_type_ids) -> logits."""

    def __init__(self, model: Classifier):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, attention_mask, token_type_ids)


def _slow_note(bits: int) -> str:
    return f"{bits}-bit weights have no fast CPU kernel here: they run dequantized in fp32 (bytes shrink, latency does not)"


def torch_runtime(model: Classifier, bits: int) -> Runtime:
    model = copy.deepcopy(model).eval()
    if bits == 16:
        model = model.to(torch.bfloat16)
        return Runtime("torch-bf16", lambda i, m, t: model(i, m, t).float(), True, "bfloat16 eager (AMX/AVX-512 bf16)")
    if bits == 8:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            qmodel = quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        return Runtime("torch-int8-dynamic", lambda i, m, t: qmodel(i, m, t), True,
                       "torch dynamic int8 linears (per-channel weights, dynamic activations)")
    note = "fp32 eager" if bits == 32 else _slow_note(bits)
    return Runtime("torch-fp32", lambda i, m, t: model(i, m, t), bits == 32, note)


def export_onnx(model: Classifier, path: Path, seq_len: int = 16) -> Path:
    """Export to ONNX with dynamic batch and sequence axes (TorchScript-based exporter)."""
    wrapper = _Plain(copy.deepcopy(model).float().eval())
    ids = torch.ones(2, seq_len, dtype=torch.long)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(path), dynamo=False, input_names=["input_ids", "attention_mask",
                          "token_type_ids"], output_names=["logits"], dynamic_axes=axes, opset_version=17)
    return path


def onnx_runtime(model: Classifier, bits: int, workdir: Path, threads: int) -> Runtime:
    import onnxruntime as ort

    path = export_onnx(model, workdir / "model.onnx")
    name, note, fast = "onnxruntime-fp32", "ONNX Runtime fp32", bits >= 32
    if bits == 8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        qpath = workdir / "model.int8.onnx"
        quantize_dynamic(str(path), str(qpath), per_channel=True, weight_type=QuantType.QInt8)
        path.unlink()
        path, name, note, fast = qpath, "onnxruntime-int8", "ONNX Runtime dynamic int8 (per-channel)", True
    elif bits == 16:
        note = "ONNX Runtime fp32: no bf16 fast path used here"
    elif bits < 8:
        note = _slow_note(bits).replace("fp32", "fp32 ONNX Runtime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(i: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": i.numpy(), "attention_mask": m.numpy(), "token_type_ids": t.numpy()}
        return torch.from_numpy(np.asarray(sess.run(["logits"], feeds)[0]))

    return Runtime(name, run, fast, note, artifact=path)


def make_runtime(model: Classifier, bits: int, target: str, workdir: Path, threads: int) -> Runtime:
    if target == "torch":
        return torch_runtime(model, bits)
    if target == "onnxruntime":
        return onnx_runtime(model, bits, workdir, threads)
    raise ValueError(f"unknown runtime '{target}'; use one of {', '.join(RUNTIMES)}")
