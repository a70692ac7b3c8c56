"""Low-rank factorization: each FFN linear W (out x in) becomes two thinner linears from its
truncated SVD, W ~ (U_r S_r^1/2)(S_r^1/2 V_r^T), keeping `rank_keep` of its full rank.

A factored layer stores r * (in + out) weights instead of in * out, so it is smaller once
r < in * out / (in + out) (for MiniLM's 384 x 1536 FFN: below 0.8 of the full rank), and it runs
two smaller matmuls. The student is then distilled with the factors as ordinary weights (they
can be magnitude-pruned and quantized like any encoder linear), stored as the two factors, and
rebuilt from the ranks recorded in `architecture.json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .base import BuildContext, Technique

if TYPE_CHECKING:
    import torch

    from ..model import Classifier


class LowRankFields(BaseModel):
    rank_keep: float = Field(1.0, gt=0.0, le=1.0,
                             description="fraction of each FFN linear's full rank kept by truncated SVD (1: off)")


class LowRank(Technique):
    name = "lowrank"
    Fields = LowRankFields

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        from ..lowrank import factorize_

        if ctx.recipe.rank_keep < 1.0:
            factorize_(model, ctx.recipe.rank_keep)

    def describe(self, model: Classifier) -> dict[str, Any]:
        from ..lowrank import LowRankLinear, ffn_parts

        family = model.family
        parts = ffn_parts(family)
        ranks = [{name: family.part(layer, path).rank for name, path in parts.items()
                  if isinstance(family.part(layer, path), LowRankLinear)} for layer in model.encoder_layers]
        return {"ffn_ranks": ranks} if any(ranks) else {}

    def rebuild_(self, model: Classifier, arch: dict[str, Any], kept_tokens: torch.Tensor | None) -> None:
        from ..lowrank import LowRankLinear, ffn_parts

        family = model.family
        parts = ffn_parts(family)
        for layer, ranks in zip(model.encoder_layers, arch.get("ffn_ranks", ())):
            for name, rank in ranks.items():
                old = family.part(layer, parts[name])
                family.set_part(layer, parts[name],
                                LowRankLinear(old.in_features, old.out_features, int(rank), bias=old.bias is not None))
