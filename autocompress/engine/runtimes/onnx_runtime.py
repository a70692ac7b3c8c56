"""ONNX Runtime on CPU: the model exported to ONNX in fp32, or dynamically quantized to int8
(per-channel weights, activations per batch) at 8 bits. Other bit-widths run the fp32 graph."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ...artifact import ONNX
from ...quiet import ORT_SEVERITY_ERROR, quiet_onnx_quantization
from .base import Precision, Session, slow_note

if TYPE_CHECKING:
    import torch

    from ..model import Classifier

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxRuntime:
    """An ONNX graph of the model, run by an onnxruntime InferenceSession."""

    name = "onnxruntime"
    export_format = "onnx"
    export_file: str | None = ONNX

    def precision(self, bits: int) -> Precision:
        if bits == 8:
            return Precision("onnxruntime-int8", True, "ONNX Runtime dynamic int8 (per-channel)")
        if bits == 16:
            return Precision("onnxruntime-fp32", False, "ONNX Runtime fp32: no bf16 fast path used here")
        if bits < 8:
            return Precision("onnxruntime-fp32", False, slow_note(bits, "fp32 ONNX Runtime"))
        return Precision("onnxruntime-fp32", bits >= 32, "ONNX Runtime fp32")

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int) -> Session:
        return onnx_runtime(model, bits, workdir, threads)


def export_onnx(model: Classifier, path: Path, seq_len: int = 16) -> Path:
    """Export to ONNX with dynamic batch and sequence axes (TorchScript-based exporter)."""
    import torch
    from torch import nn

    class Plain(nn.Module):
        """Positional forward: (input_ids, attention_mask, token_type_ids) -> logits."""

        def __init__(self, model: Classifier):
            super().__init__()
            self.model = model  # the attribute name prefixes the graph's weight names

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids, attention_mask, token_type_ids)

    wrapper = Plain(copy.deepcopy(model).float().eval())
    ids = torch.ones(2, seq_len, dtype=torch.long)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    axes = {name: {0: "batch", 1: "seq"} for name in INPUTS} | {"logits": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(path), dynamo=False, input_names=list(INPUTS),
                          output_names=["logits"], dynamic_axes=axes, opset_version=17)
    return path


def onnx_runtime(model: Classifier, bits: int, workdir: Path, threads: int) -> Session:
    """Export `model` under `workdir` (model.onnx, or model.int8.onnx at 8 bits) and open a session."""
    import numpy as np
    import onnxruntime as ort
    import torch

    spec = OnnxRuntime().precision(bits)
    path = export_onnx(model, workdir / "model.onnx")
    if bits == 8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        qpath = workdir / "model.int8.onnx"
        with quiet_onnx_quantization():  # its advice to pre-process is a WARNING line on the root logger
            quantize_dynamic(str(path), str(qpath), per_channel=True, weight_type=QuantType.QInt8)
        path.unlink()
        path = qpath
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = ORT_SEVERITY_ERROR  # graph-optimizer warnings are not for the user
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(i: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": i.numpy(), "attention_mask": m.numpy(), "token_type_ids": t.numpy()}
        return torch.from_numpy(np.asarray(sess.run(["logits"], feeds)[0]))

    return spec.session(run, artifact=path)
