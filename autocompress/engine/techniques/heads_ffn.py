"""Head and FFN-neuron removal: the least important attention heads and FFN neurons of every
layer are removed physically, ranked by first-order Taylor importance on training batches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .base import BuildContext, Technique

if TYPE_CHECKING:
    import torch

    from ..model import Classifier


class HeadsFfnFields(BaseModel):
    heads_keep: float = Field(1.0, gt=0.0, le=1.0, description="fraction of attention heads kept per layer")
    ffn_keep: float = Field(1.0, gt=0.0, le=1.0, description="fraction of FFN neurons kept per layer")


class HeadsAndNeurons(Technique):
    name = "heads_ffn"
    Fields = HeadsFfnFields

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        from ..distill import distilled_importance
        from ..structured import layer_shapes, prune_structured_

        recipe, tcfg, family = ctx.recipe, ctx.inputs.teacher.config, model.family
        heads = family.config_heads_count(tcfg)
        if not family.why_not("heads_keep"):  # a family whose heads stay keeps them all
            heads = max(1, round(recipe.heads_keep * heads))
        neurons = max(1, round(recipe.ffn_keep * family.config_ffn_size(tcfg)))
        if not any(h > heads or f > neurons for h, f in layer_shapes(model)):
            return
        importance = distilled_importance(model, ctx.train, ctx.logits, batch_size=recipe.batch_size,
                                          seed=recipe.seed, batches=ctx.inputs.importance_batches,
                                          temperature=recipe.temperature, alpha=recipe.alpha,
                                          device=ctx.inputs.train_device)
        prune_structured_(model, heads, neurons, importance)

    def describe(self, model: Classifier) -> dict[str, Any]:
        from ..structured import layer_shapes

        shapes = layer_shapes(model)
        return {"heads": [h for h, _ in shapes], "ffn": [f for _, f in shapes]}

    def rebuild_(self, model: Classifier, arch: dict[str, Any], kept_tokens: torch.Tensor | None) -> None:
        from ..structured import prune_heads_, prune_neurons_

        prune_heads_(model, [range(h) for h in arch["heads"]])
        prune_neurons_(model, [range(f) for f in arch["ffn"]])
