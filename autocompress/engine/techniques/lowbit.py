"""Low-bit training: how binary and ternary weights are trained so that they keep the accuracy.

- `stage_bits` / `stage_frac`: a staged schedule. The encoder weights train at `stage_bits` (8-bit
  or ternary) for the first `stage_frac` of the steps, then at the recipe's `bits`, so a binary
  student starts from weights that already work at a few bits instead of from the fp32 teacher.
- `ste_clip`: the clipped straight-through estimator for binary and ternary weights. A latent weight
  beyond `ste_clip` times its row's scale gets no gradient, and after every step the latent weights
  are clipped back into that range, so none drifts far past the point where its sign could flip.
  Weights at 4 bits or more (or in an 8-bit stage) are not clipped, so a search space may fix
  `ste_clip` for every trial.

Both are off by default; they act on the quantizers the quantization technique attached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from .base import BuildContext, Technique

if TYPE_CHECKING:
    from torch import nn

    from ..recipe import Recipe
    from ..model import Classifier


class LowBitFields(BaseModel):
    stage_bits: Literal[8, 4, 2] | None = Field(
        None, description="train at this bit-width first, then at `bits` (a staged schedule)")
    stage_frac: float = Field(0.5, gt=0.0, lt=1.0, description="share of the training steps spent at stage_bits")
    ste_clip: float | None = Field(
        None, gt=0.0, le=100.0, description="binary / ternary: no gradient and latent clip beyond this many row scales")


class StageSwitch:
    """Step hook: after `at` steps, every quantizer still at the stage width moves to the final width."""

    def __init__(self, quantizers: list, final_bits: int, frac: float):
        self.quantizers = quantizers
        self.final_bits = final_bits
        self.frac = frac
        self.done = False

    def __call__(self, step: int, total: int, loss: float, model: nn.Module) -> None:
        if not self.done and step >= round(self.frac * total):
            for fq in self.quantizers:
                fq.bits = self.final_bits
            self.done = True


def _clamp_hook(step: int, total: int, loss: float, model: nn.Module) -> None:
    from ..quantize import clamp_latent_

    clamp_latent_(model)


class LowBitTraining(Technique):
    name = "lowbit"
    Fields = LowBitFields

    def check(self, recipe: Recipe, n_teacher_layers: int) -> str | None:
        if recipe.stage_bits is not None:
            if recipe.stage_bits <= recipe.bits:
                return (f"stage_bits: a staged schedule goes from more bits to fewer; stage_bits "
                        f"{recipe.stage_bits} is not above bits {recipe.bits}")
            if recipe.train_steps == 0:
                return "stage_bits: a staged schedule needs training steps; set train_steps"
        return None

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        from ..quantize import fake_quants

        recipe = ctx.recipe
        quantizers = [fq for _, _, fq in fake_quants(model)]
        if recipe.ste_clip is not None:
            for fq in quantizers:
                fq.clip = recipe.ste_clip  # used only while fq.bits <= 2
            ctx.hooks.append(_clamp_hook)
        if recipe.stage_bits is not None and recipe.train_steps > 0:
            staged = [fq for fq in quantizers if fq.bits == recipe.bits]
            for fq in staged:
                fq.bits = recipe.stage_bits
            ctx.hooks.append(StageSwitch(staged, recipe.bits, recipe.stage_frac))
