"""Low-rank factorization of linear layers by truncated SVD: W (out x in) ~ (U_r S_r^1/2)(S_r^1/2 V_r^T).

A factored layer stores r * (in + out) weights instead of in * out: smaller once
r < in * out / (in + out) (for MiniLM's 384 x 1536 FFN: below 0.8 of the full rank).
"""

from __future__ import annotations

import torch
from torch import nn

from .families import Family
from .model import Classifier


def ffn_parts(family: Family) -> dict[str, str]:
    """The FFN's two linears by the names `architecture.json` records them under (BERT's, kept for every
    family: "intermediate" is the FFN's input linear, "output" its output linear) -> their paths in a layer."""
    return {"intermediate": family.ffn_in, "output": family.ffn_out}


class LowRankLinear(nn.Module):
    """`up(down(x))`: a linear layer of rank `rank` (the bias, if any, is on `up`)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int) -> "LowRankLinear":
        """The best rank-`rank` approximation of `linear` (truncated SVD, singular values split evenly)."""
        w = linear.weight.detach().float()
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        root = s[:rank].sqrt()
        new = cls(linear.in_features, linear.out_features, rank, bias=linear.bias is not None)
        with torch.no_grad():
            new.down.weight.copy_(root[:, None] * vh[:rank])
            new.up.weight.copy_(u[:, :rank] * root[None, :])
            if linear.bias is not None:
                new.up.bias.copy_(linear.bias.detach())
        return new.to(linear.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def rank_for(rank_keep: float, linear: nn.Module) -> int:
    return max(1, round(rank_keep * min(linear.in_features, linear.out_features)))


def factorize_(model: Classifier, rank_keep: float) -> None:
    """Replace every FFN linear with its rank-`rank_keep` factorization (already factored ones stay)."""
    family = model.family
    for layer in model.encoder_layers:
        for path in ffn_parts(family).values():
            linear = family.part(layer, path)
            if isinstance(linear, nn.Linear):
                family.set_part(layer, path, LowRankLinear.from_linear(linear, rank_for(rank_keep, linear)))
