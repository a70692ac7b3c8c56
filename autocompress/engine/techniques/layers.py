"""Layer selection: the student keeps a subset of the teacher's encoder layers (weights copied)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pydantic
from pydantic import BaseModel, Field

from .base import BuildContext, Technique

if TYPE_CHECKING:
    from ..recipe import Recipe
    from ..model import Classifier


class LayerFields(BaseModel):
    layers: tuple[int, ...] | None = Field(None, description="teacher layer indices kept, in order")

    @pydantic.field_validator("layers")
    @classmethod
    def _layers_valid(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("keep at least one layer")
        if any(i < 0 for i in v) or len(set(v)) != len(v):
            raise ValueError("layer indices must be distinct and >= 0")
        return tuple(sorted(v))


class LayerSelection(Technique):
    name = "layers"
    Fields = LayerFields

    def check(self, recipe: Recipe, n_teacher_layers: int) -> str | None:
        if recipe.layers is not None and max(recipe.layers) >= n_teacher_layers:
            return f"layers: the teacher has layers 0..{n_teacher_layers - 1}, got {list(recipe.layers)}"
        return None

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        from ..student import keep_layers_

        layers = ctx.recipe.layers
        if ctx.from_start:  # a student to continue from has its layers already
            if layers is not None and len(layers) != len(model.encoder_layers):
                raise ValueError("a start model must already have the recipe's layers")
            return
        keep_layers_(model, layers)
