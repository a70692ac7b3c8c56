"""Elastic start: the student is cut out of the task's elastic network instead of copied from the teacher.

The elastic network (`engine/elastic.py`, trained once per teacher and task by `elastic_net.py`) holds
every sub-network at once. With `elastic: true`, `build.build_student` starts from its sub-network of
the recipe's depth (`layers`, evenly spaced), `heads_keep` and `ffn_keep`; the layer and heads/FFN
techniques then find their shapes already in place, and every later technique (vocabulary pruning,
low-rank factors, masks, quantization, `train_steps` of recovery distilled from the teacher's logits)
applies as for any candidate. Nothing is added to the stored architecture: the sub-network's shapes
are recorded by the techniques that own them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from .base import Technique

if TYPE_CHECKING:
    from ..recipe import Recipe


class ElasticStartFields(BaseModel):
    elastic: bool = Field(False, description="start from the task's elastic network: the trial's depth, heads_keep "
                                             "and ffn_keep select its sub-network")


class ElasticStart(Technique):
    name = "elastic_start"
    Fields = ElasticStartFields

    def check(self, recipe: Recipe, n_teacher_layers: int) -> str | None:
        from ..student import evenly_spaced_layers

        if not recipe.elastic or recipe.layers is None:
            return None
        spread = evenly_spaced_layers(n_teacher_layers, len(recipe.layers))
        if tuple(recipe.layers) != spread:
            return (f"layers: an elastic sub-network keeps evenly spaced layers ({list(spread)} for "
                    f"{len(recipe.layers)} layers), got {list(recipe.layers)}; give those layers, or a depth in a "
                    "search space")
        return None
