"""ONNX Runtime on CPU, dynamic quantization: the model exported to ONNX in fp32 (32 and 16
bits: ONNX Runtime's CPU provider has no bf16 path used here), or dynamically quantized to int8
(per-channel weights, activations per batch) at 8 bits, deployed as model.onnx.

4/2/1 bits are expanded at load: the packed k-bit weights are what ships; at load the model
(whose weights are the dequantized k-bit values) is exported and dynamically quantized to int8 in
memory, so it runs at int8 speed from k-bit bytes.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifact import ONNX
from ..quiet import ORT_SEVERITY_ERROR, quiet_onnx_quantization
from ..widths import width_name
from .base import (
    INPUTS,
    Batch,
    Precision,
    RunFn,
    RuntimeBase,
    Session,
    expanded_deploys,
    int64_feeds,
    int8_needs_reduced_range,
)

if TYPE_CHECKING:
    import torch

    from ..model import Classifier

__all__ = ["INPUTS", "OnnxRuntime", "export_onnx", "onnx_runtime", "ort_run"]


class OnnxRuntime(RuntimeBase):
    """An ONNX graph of the model, run by an onnxruntime InferenceSession."""

    name = "onnxruntime"
    export_format = "onnx"
    export_files: tuple[str, ...] = (ONNX,)

    def precision(self, bits: int) -> Precision:
        if bits == 8:
            return Precision("onnxruntime-int8", True, "ONNX Runtime dynamic int8 (per-channel)",
                             "stored: model.onnx with int8 weights; in memory: dynamic int8")
        if bits == 16:
            return Precision("onnxruntime-fp32", False, "ONNX Runtime fp32: no bf16 fast path used here",
                             "stored: model.onnx in fp32; in memory: fp32")
        if bits < 8:
            return Precision("onnxruntime-int8", True,
                             f"stored as packed {width_name(bits)} weights, run as ONNX Runtime dynamic int8 "
                             "(per-channel) after expansion at load",
                             expanded_deploys(bits, "ONNX Runtime dynamic int8"))
        return Precision("onnxruntime-fp32", True, "ONNX Runtime fp32", "stored: model.onnx in fp32; in memory: fp32")

    def deploys_files(self, bits: int) -> bool:
        return bits >= 8

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int,
              calibration: Sequence[Batch] = ()) -> Session:
        return onnx_runtime(model, bits, workdir, threads)

    def open(self, workdir: Path, bits: int, threads: int) -> Session:
        files = self.deployed(workdir, bits)
        return self.precision(bits).session(ort_run(files[0], threads), files)


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
    per_token = getattr(model, "task", None) is not None and model.task.per_token
    axes = {name: {0: "batch", 1: "seq"} for name in INPUTS} | {"logits": {0: "batch", 1: "seq"} if per_token
                                                               else {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, args, str(path), dynamo=False, input_names=list(INPUTS),
                          output_names=["logits"], dynamic_axes=axes, opset_version=17)
    return path


def quantize_dynamic_int8(src: Path, dst: Path) -> Path:
    """ONNX Runtime dynamic int8 of the fp32 graph `src` (per-channel QInt8 weights; 7-bit on a CPU without
    int8 dot products, `int8_needs_reduced_range`) into `dst`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_onnx_quantization():  # its advice to pre-process is a WARNING line on the root logger
        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                         reduce_range=int8_needs_reduced_range())
    return dst


# ONNX Runtime's pool busy-waits after a run by default and can take a core from whatever runs next in the
# process: the next candidate the search times, the next row of a side-by-side table. Off, at some cost to
# ONNX Runtime's own latency (experiments/results/ort-spinning.md measures both).
SPINNING = False


def ort_run(path: Path, threads: int) -> RunFn:
    """An InferenceSession of the ONNX file `path` on `threads` CPU threads, as a RunFn. The file
    is read once: it may be deleted after this returns."""
    import numpy as np
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPINNING else "0")
    opts.log_severity_level = ORT_SEVERITY_ERROR  # graph-optimizer warnings are not for the user
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [x.name for x in sess.get_inputs()]

    def run(i: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        feeds = int64_feeds({"input_ids": i, "attention_mask": m, "token_type_ids": t}, names)
        out = np.asarray(sess.run(["logits"], feeds)[0], dtype=np.float32)
        return torch.from_numpy(out)

    return run


@contextmanager
def exported_onnx(model: Classifier, workdir: Path) -> Iterator[Path]:
    """`model` exported to fp32 ONNX in a scratch folder inside `workdir` (created if needed), removed
    on exit: what every ONNX-based runtime quantizes, compiles or deploys from."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".export-") as tmp:
        yield export_onnx(model, Path(tmp) / ONNX)


def onnx_runtime(model: Classifier, bits: int, workdir: Path, threads: int) -> Session:
    """Export `model` to `workdir`/model.onnx (fp32 at 32/16 bits, dynamic int8 at 8) and open a
    session; at 4/2/1 bits quantize to int8 in a temporary folder and deploy no file."""
    spec = OnnxRuntime().precision(bits)
    target = Path(workdir) / ONNX
    with exported_onnx(model, workdir) as fp32:
        if bits > 8:
            fp32.replace(target)
            return spec.session(ort_run(target, threads), (target,))
        if bits == 8:
            quantize_dynamic_int8(fp32, target)
            return spec.session(ort_run(target, threads), (target,))
        run = ort_run(quantize_dynamic_int8(fp32, fp32.parent / "model.int8.onnx"), threads)
    return spec.session(run)  # expanded at load: the packed weights are what is deployed
