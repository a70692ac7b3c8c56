"""MPNet: `attention.attn` with q / k / v / o projections, positions counted from the padding id, no token
types. Its relative-position bias is one table with a column per head of the original model, computed once
and shared by all layers; each layer's attention therefore records which original heads it still has
(`bias_heads`, stored in `architecture.json`) and takes only their columns of the bias."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .base import Family

BIAS_HEADS = "relative_bias_heads"  # architecture.json: per layer, the original heads it keeps (None: all)


def _bias_of_kept_heads(module: nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook of an MPNet attention: the shared position bias cut to the heads the layer kept."""
    heads = getattr(module, "bias_heads", None)
    if heads is None or len(args) < 3 or args[2] is None:
        return None
    index = torch.tensor(heads, dtype=torch.long, device=args[2].device)
    return (*args[:2], args[2].index_select(1, index), *args[3:])


class MPNetFamily(Family):
    def adapt_(self, hf: nn.Module) -> None:
        for layer in self.encoder_layers(hf):
            attn = self.attention_module(layer)
            if not getattr(attn, "_bias_hook", False):
                attn.register_forward_pre_hook(_bias_of_kept_heads)
                attn._bias_hook = True

    def _kept(self, layer: nn.Module) -> list[int]:
        heads = getattr(self.attention_module(layer), "bias_heads", None)
        return list(range(self.heads(layer))) if heads is None else list(heads)

    def keep_heads_(self, layer: nn.Module, heads: torch.Tensor) -> None:
        kept = self._kept(layer)
        self.attention_module(layer).bias_heads = [kept[i] for i in heads.tolist()]

    def reorder_heads_(self, layer: nn.Module, order: torch.Tensor) -> None:
        self.keep_heads_(layer, order)

    def describe(self, hf: nn.Module) -> dict[str, Any]:
        heads = [getattr(self.attention_module(layer), "bias_heads", None) for layer in self.encoder_layers(hf)]
        return {BIAS_HEADS: heads} if any(h is not None for h in heads) else {}

    def rebuild_(self, hf: nn.Module, parts: Mapping[str, Any]) -> None:
        for layer, heads in zip(self.encoder_layers(hf), parts.get(BIAS_HEADS, ())):
            self.attention_module(layer).bias_heads = None if heads is None else [int(h) for h in heads]


MPNET = MPNetFamily(
    "mpnet", ("mpnet",),
    attention="attention.attn",
    head_rows=("attention.attn.q", "attention.attn.k", "attention.attn.v"),
    attention_out="attention.attn.o",
    token_types=False,
    positions_from_padding=True,
)
