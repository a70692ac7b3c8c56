"""OpenVINO on CPU: the fp32 ONNX export read by OpenVINO and compiled for the CPU with one
stream, a latency hint and the caller's thread count.

32 bits: f32 inference precision. 16 bits: bf16 inference precision where the CPU computes in
bf16 (AVX-512 BF16 / AMX), else f32; its weights are saved in fp16 (bf16 values are exact in fp16
down to 6e-5: half the bytes of an fp32 file, the same outputs and speed as measured). 8 bits:
static int8 by NNCF (transformer mode, activation ranges calibrated on the given batches). Those
three deploy model.xml + model.bin. 4/2/1 bits
are expanded at load: the packed k-bit weights ship, and at load the dequantized model runs in
bf16 (f32 without bf16 instructions).

OpenVINO's CPU plugin defaults to bf16 on a bf16 CPU: every session sets its precision hint
explicitly, and `open` sets the same hint from `bits`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..widths import width_name
from .base import (
    Batch,
    Precision,
    RunFn,
    RuntimeBase,
    Session,
    expanded_deploys,
    has_bf16,
    int64_feeds,
    int8_needs_reduced_range,
    slow_note,
)
from .onnx_runtime import exported_onnx

if TYPE_CHECKING:
    from ..model import Classifier

XML, BIN = "model.xml", "model.bin"
INT8_PRECISION = "bf16"  # what NNCF int8 graphs run their non-quantized ops in (f32 on a CPU without bf16)


class OpenVino(RuntimeBase):
    """An OpenVINO model compiled for the CPU plugin."""

    name = "openvino"
    export_format = "openvino"
    export_files: tuple[str, ...] = (XML, BIN)

    def precision(self, bits: int) -> Precision:
        ir = "model.xml + model.bin"
        if bits == 32:
            return Precision("openvino-fp32", True, "OpenVINO fp32 (f32 inference precision)",
                             f"stored: {ir} in fp32; in memory: fp32")
        if bits == 16:
            if has_bf16():
                return Precision("openvino-bf16", True, "OpenVINO bf16 inference precision (AMX/AVX-512 bf16)",
                                 f"stored: {ir} in fp16; in memory: bf16")
            return Precision("openvino-fp32", False, "OpenVINO fp32: this CPU has no bf16 instructions",
                             f"stored: {ir} in fp16; in memory: fp32")
        if bits == 8:
            rest = "bf16" if _hint(8) == "bf16" else "fp32"
            return Precision("openvino-int8", True,
                             "OpenVINO static int8 (NNCF, transformer mode; activation ranges calibrated on "
                             f"training rows; other ops in {rest})",
                             f"stored: {ir} with int8 weights and fixed activation ranges; in memory: int8")
        if has_bf16():
            return Precision("openvino-bf16", True,
                             f"stored as packed {width_name(bits)} weights, run as OpenVINO bf16 after expansion at load",
                             expanded_deploys(bits, "bf16"))
        return Precision("openvino-fp32", False, slow_note(bits, "fp32 OpenVINO"), expanded_deploys(bits, "fp32"))

    def needs_calibration(self, bits: int) -> bool:
        return bits == 8

    def deploys_files(self, bits: int) -> bool:
        return bits >= 8

    def build(self, model: Classifier, bits: int, workdir: Path, threads: int,
              calibration: Sequence[Batch] = ()) -> Session:
        self.check_calibration(bits, calibration)
        import openvino as ov

        spec = self.precision(bits)
        with exported_onnx(model, workdir) as fp32:
            ov_model = _core().read_model(str(fp32))
            if bits == 8:
                ov_model = nncf_int8(ov_model, calibration)
            if bits < 8:  # expanded at load: nothing deployed
                return spec.session(ov_run(ov_model, bits, threads))
            ov.save_model(ov_model, str(Path(workdir) / XML), compress_to_fp16=bits == 16)
        return self.open(workdir, bits, threads)  # run exactly what is deployed

    def open(self, workdir: Path, bits: int, threads: int) -> Session:
        files = self.deployed(workdir, bits)
        return self.precision(bits).session(ov_run(_core().read_model(str(files[0])), bits, threads), files)


@lru_cache(maxsize=1)
def _core():
    import openvino as ov

    return ov.Core()


def _hint(bits: int) -> str:
    """The CPU plugin's inference precision at `bits`."""
    if not has_bf16():
        return "f32"
    if bits == 32:
        return "f32"
    if bits == 8:
        return INT8_PRECISION
    return "bf16"


def compile_config(bits: int, threads: int) -> dict[str, Any]:
    """CPU plugin properties: `threads` inference threads, one stream, latency hint, precision by `bits`."""
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": _hint(bits)}


def ov_run(ov_model, bits: int, threads: int) -> RunFn:
    """`ov_model` compiled on the CPU for `bits` and `threads`, as a RunFn (one infer request)."""
    import numpy as np
    import torch

    compiled = _core().compile_model(ov_model, "CPU", compile_config(bits, threads))
    request = compiled.create_infer_request()
    names = input_names(ov_model)

    def run(i: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        request.infer(int64_feeds({"input_ids": i, "attention_mask": m, "token_type_ids": t}, names))
        # the request reuses its output buffer: copy it out
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True))

    return run


@contextmanager
def quiet_nncf() -> Iterator[None]:
    """NNCF without its INFO lines and its rich progress bars ("Statistics collection ..."); its
    errors still show. Restores NNCF's log level and the rich console afterwards."""
    import nncf
    import rich

    logger = logging.getLogger("nncf")
    levels = [logger.level] + [h.level for h in logger.handlers]
    console = rich.get_console()
    was_quiet = console.quiet
    nncf.set_log_level(logging.ERROR)
    console.quiet = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        console.quiet = was_quiet
        logger.setLevel(levels[0])
        for handler, level in zip(logger.handlers, levels[1:]):
            handler.setLevel(level)


def input_names(ov_model) -> list[str]:
    """The inputs `ov_model` takes (no token types for a family that has none)."""
    return [x.get_any_name() for x in ov_model.inputs]


def nncf_int8(ov_model, batches: Sequence[Batch]):
    """NNCF static int8 of `ov_model` (transformer mode), activation ranges from every batch."""
    import nncf

    names = input_names(ov_model)
    # a CPU without int8 dot products saturates 8-bit weights: NNCF's fix (7-bit weights) on every layer, not only
    # the first one (its default)
    overflow = nncf.OverflowFix.ENABLE if int8_needs_reduced_range() else nncf.OverflowFix.FIRST_LAYER
    with quiet_nncf():
        return nncf.quantize(ov_model, nncf.Dataset(list(batches), lambda b: int64_feeds(b, names)),
                             model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches),
                             advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=overflow))
