"""Quantization: per-row 8- or 4-bit, ternary (2 bits) or binary weights, or bfloat16, trained with
fake-quant and the straight-through estimator (or, with `qat: false`, trained in float and quantized once
after training); stored packed (see `engine/quantize.py`, `engine/storage.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..widths import Bits
from .base import BuildContext, Technique

if TYPE_CHECKING:
    from ..model import Classifier

class QuantizationFields(BaseModel):
    bits: Bits = 32
    embedding_bits: Bits | None = Field(None, description="bit-width of embeddings (None: same as bits)")
    qat: bool = Field(True, description="train with fake-quant (quantization-aware); False: train in float and "
                                        "quantize once, after training (post-training quantization)")

    @property
    def emb_bits(self) -> int:
        return self.embedding_bits if self.embedding_bits is not None else self.bits


class Quantization(Technique):
    name = "quantization"
    Fields = QuantizationFields

    def check(self, recipe, n_teacher_layers: int) -> str | None:
        if not recipe.qat and (recipe.stage_bits is not None or recipe.ste_clip is not None):
            return "stage_bits and ste_clip act on quantization-aware training: drop them or set qat: true"
        return None

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        from ..quantize import attach_fake_quant_

        recipe = ctx.recipe
        if recipe.qat and (recipe.bits < 32 or recipe.emb_bits < 32):
            attach_fake_quant_(model, recipe.bits, recipe.emb_bits)
