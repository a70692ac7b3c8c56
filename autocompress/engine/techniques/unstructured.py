"""Unstructured magnitude pruning: the smallest encoder weights are masked to zero, at once or on
a gradual (cubic) schedule during training, over all weights together or layer by layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pydantic
from pydantic import BaseModel, Field

from .base import BuildContext, Technique

if TYPE_CHECKING:
    from ..recipe import Recipe
    from ..model import Classifier


class UnstructuredFields(BaseModel):
    prune_ratio: float = Field(0.0, ge=0.0, le=0.99, description="target sparsity of encoder weights")
    prune_threshold: float | None = Field(None, gt=0.0, description="prune |w| below this instead")
    prune_scope: Literal["global", "layer"] = "global"
    prune_schedule: Literal["oneshot", "gradual"] = "gradual"

    @pydantic.model_validator(mode="after")
    def _prune_consistent(self) -> "UnstructuredFields":
        if self.prune_threshold is not None and self.prune_ratio > 0:
            raise ValueError("set prune_ratio or prune_threshold, not both")
        return self

    @property
    def prunes_weights(self) -> bool:
        return self.prune_ratio > 0 or self.prune_threshold is not None


def schedule_of(recipe: Recipe) -> Literal["oneshot", "gradual"]:
    """The one place that decides: a threshold, or no training to spread it over, means one shot."""
    if recipe.prune_threshold is not None or recipe.train_steps == 0:
        return "oneshot"
    return recipe.prune_schedule


class UnstructuredPruning(Technique):
    name = "unstructured"
    Fields = UnstructuredFields

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        from ..prune import GradualPruner

        recipe = ctx.recipe
        if not recipe.prunes_weights:
            return
        threshold = recipe.prune_threshold
        pruner = GradualPruner(model, None if threshold is not None else recipe.prune_ratio, recipe.prune_scope,
                               schedule_of(recipe), threshold=threshold)
        pruner.start_()
        ctx.hooks.insert(0, pruner)  # masks are updated before any other hook sees the step
