"""ONNX Runtime on CPU, static quantization: a QDQ int8 graph whose activation ranges were
calibrated on real rows (per-channel int8 weights), deployed as model.onnx.

8 bits, and 4/2/1 bits (from the dequantized k-bit weights, rounded again to int8 per channel)
need calibration batches: the ranges are fixed in the deployed graph, so nothing is calibrated at
load. 32 and 16 bits run the fp32 graph, as `onnxruntime` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifact import ONNX
from ..quiet import quiet_onnx_quantization
from ..widths import width_name
from .base import Batch, Precision, RuntimeBase, Session, int64_feeds, int8_needs_reduced_range
from .onnx_runtime import exported_onnx, ort_run

if TYPE_CHECKING:
    from ..model import Classifier


@dataclass(frozen=True)
class StaticInt8:
    """`quantize_static` settings. The defaults were chosen by measurement (MiniLM shape, 3 layers,
    seq 64, 2 threads, 8 calibration batches of 32; ratios to ONNX Runtime dynamic int8 at batch
    1 / 32, interleaved): these defaults 1.11 / 1.23, 17.6 MB, relative max logit error 0.13.
    QInt8 activations ran 4-6x slower at batch 1 (no u8s8 VNNI path); leaving the embedding Gather
    unquantized kept a 53 MB fp32 table and was no faster; quantizing every op (Add, LayerNorm,
    Softmax, attention MatMuls) was slower and less accurate; quant_pre_process and Percentile
    calibration were slower and no closer."""

    activations: str = "QUInt8"  # QuantType name of the activations (weights are always QInt8 per channel)
    op_types: tuple[str, ...] | None = ("MatMul", "Gemm", "Gather")  # None: every op ORT can quantize
    const_b_only: bool = True  # MatMuls of two activations (attention scores, context) stay fp32
    pre_process: bool = False  # quant_pre_process (ONNX shape inference + ORT graph optimization) first
    method: str = "MinMax"  # CalibrationMethod name: MinMax, Percentile, Entropy


SETTINGS = StaticInt8()


class OnnxStatic(RuntimeBase):
    """A statically quantized (QDQ) ONNX graph, run by an onnxruntime InferenceSession."""

    name = "onnxruntime-static"
    export_format = "onnx-static"
    export_files: tuple[str, ...] = (ONNX,)

    def precision(self, bits: int) -> Precision:
        if bits <= 8:
            source = "" if bits == 8 else f" (from the dequantized {width_name(bits)} weights)"
            return Precision("onnxruntime-static-int8", True,
                             f"ONNX Runtime static int8 QDQ{source}: per-channel weights, activation ranges "
                             "calibrated on training rows",
                             "stored: model.onnx with int8 weights and fixed activation ranges; in memory: int8")
        if bits == 16:
            return Precision("onnxruntime-fp32", False, "ONNX Runtime fp32: no bf16 fast path used here",
                             "stored: model.onnx in fp32; in memory: fp32")
        return Precision("onnxruntime-fp32", True, "ONNX Runtime fp32", "stored: model.onnx in fp32; in memory: fp32")

    def needs_calibration(self, bits: int) -> bool:
        return bits <= 8

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int,
              calibration: Sequence[Batch] = ()) -> Session:
        self.check_calibration(bits, calibration)
        spec = self.precision(bits)
        target = Path(workdir) / ONNX
        with exported_onnx(model, workdir) as fp32:
            if bits > 8:
                fp32.replace(target)
            else:
                quantize_static_int8(fp32, target, calibration, fp32.parent)
        return spec.session(ort_run(target, threads), (target,))

    def open(self, workdir: Path, bits: int, threads: int) -> Session:
        files = self.deployed(workdir, bits)
        return self.precision(bits).session(ort_run(files[0], threads), files)


def calibration_reader(batches: Sequence[Batch], model: Path):
    """The batches as an `onnxruntime.quantization.CalibrationDataReader` (int64 numpy feeds of the inputs
    the ONNX file `model` has)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    names = [x.name for x in onnx.load(str(model), load_external_data=False).graph.input]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = [int64_feeds(b, names) for b in batches]
            self.pos = 0

        def get_next(self):
            if self.pos >= len(self.feeds):
                return None
            self.pos += 1
            return self.feeds[self.pos - 1]

        def rewind(self) -> None:
            self.pos = 0

    return Reader()


def quantize_static_int8(src: Path, dst: Path, batches: Sequence[Batch], scratch: Path,
                         settings: StaticInt8 = SETTINGS) -> Path:
    """Static QDQ int8 of the fp32 graph `src` into `dst`, activation ranges from `batches`."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    with quiet_onnx_quantization(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warnings on constant tensors (scale 0) it then handles
        if settings.pre_process:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = scratch / "model.pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # symbolic inference fails on this graph
            src = pre
        quantize_static(
            str(src), str(dst), calibration_reader(batches, src), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(settings.op_types) if settings.op_types else None,
            per_channel=True, weight_type=QuantType.QInt8,
            activation_type=getattr(QuantType, settings.activations),
            calibrate_method=getattr(CalibrationMethod, settings.method),
            extra_options={"MatMulConstBOnly": settings.const_b_only},
            reduce_range=int8_needs_reduced_range(),
        )
    return dst
