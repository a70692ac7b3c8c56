"""Distillation settings: how every student is trained after its other techniques are applied.

`alpha * T^2 * KL(softmax(z_T / T) || softmax(z_S / T)) + (1 - alpha) * CE`, plus an optional
hidden-state MSE and an attention-map KL on the mapped layers, with the forward passes optionally under bfloat16
autocast (`bf16`); the loop itself is `engine/distill.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from .base import Technique

if TYPE_CHECKING:
    from ..recipe import Recipe
    from ..distill import TrainSettings


class DistillationFields(BaseModel):
    temperature: float = Field(2.0, gt=0.0, le=50.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="weight of the soft (KD) loss")
    hidden_mse: float = Field(0.0, ge=0.0, description="weight of hidden-state MSE on mapped layers")
    attention_kl: float = Field(0.0, ge=0.0, description="weight of attention-map KL on mapped layers")
    train_steps: int = Field(0, ge=0, le=1_000_000)
    lr: float = Field(5e-5, gt=0.0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)
    train_subset: int | None = Field(None, ge=1, description="sample this many training examples")
    seed: int = 0
    bf16: bool = Field(False, description="train under bfloat16 autocast on the training device (float32 "
                                          "weights and loss); faster on GPUs and on CPUs with AMX / AVX-512 bf16")


def train_settings(recipe: Recipe, device: str = "cpu", bf16: bool = False) -> TrainSettings:
    """The loop's settings for `recipe`, trained on `device`; under bfloat16 autocast when the recipe or the
    experiment (`bf16`, its `train.precision` on that device) asks for it."""
    from ..distill import TrainSettings

    return TrainSettings(steps=recipe.train_steps, lr=recipe.lr, temperature=recipe.temperature,
                         alpha=recipe.alpha, hidden_mse=recipe.hidden_mse, attention_kl=recipe.attention_kl,
                         bf16=recipe.bf16 or bf16, device=device)


class Distillation(Technique):
    name = "distillation"
    Fields = DistillationFields
