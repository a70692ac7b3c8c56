"""ModernBERT: one fused query-key-value projection (`attn.Wqkv`), a gated FFN (`mlp.Wi` holds the input and
the gate halves, `mlp.Wo` the output), rotary positions (no position table), no token types, and layers that
alternate full and sliding-window attention.

A head owns head-size rows in each of the three thirds of `Wqkv`; a neuron owns one row in each half of
`Wi`. The attention reads its head count from the projection's width, so nothing is recorded when heads go.
A layer keeps its attention type when layers are dropped (`config.layer_types` follows the kept layers),
and the first layer, which has no norm before its attention, records whether the kept first layer had one.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Family, get_path, rows_with_bias

FIRST_NORM = "autocompress_first_attn_norm"  # config key: the first kept layer normalizes before attention


def _in_each_part(index: torch.Tensor, parts: int, width: int) -> torch.Tensor:
    """Rows `index` of each of `parts` equal blocks of `width` rows, stacked (a fused or gated projection)."""
    return torch.cat([index + part * width for part in range(parts)])


def _parts_side_by_side(rows: torch.Tensor, parts: int) -> torch.Tensor:
    """[parts * n, features] -> [n, parts * features]: each unit's rows of every block on one line."""
    return rows.view(parts, -1, rows.shape[1]).permute(1, 0, 2).reshape(rows.shape[0] // parts, -1)


class ModernBertFamily(Family):
    def heads(self, layer: nn.Module) -> int:
        return get_path(layer, "attn.Wqkv").out_features // (3 * self.head_size(layer))

    def set_heads(self, layer: nn.Module, count: int) -> None:
        """Nothing to record: the attention takes its head count from `Wqkv`'s width."""

    def head_row_index(self, layer: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        return _in_each_part(rows, 3, self.heads(layer) * self.head_size(layer))

    def head_weights(self, layer: nn.Module) -> torch.Tensor:
        return _parts_side_by_side(rows_with_bias(get_path(layer, "attn.Wqkv")), 3)  # query, key, value

    def ffn_row_index(self, layer: nn.Module, neurons: torch.Tensor) -> torch.Tensor:
        return _in_each_part(neurons, 2, self.neurons(layer))

    def ffn_weights(self, layer: nn.Module) -> torch.Tensor:
        return _parts_side_by_side(rows_with_bias(get_path(layer, self.ffn_in)), 2)  # input half, gate half

    def set_encoder_layers(self, hf: nn.Module, layers: nn.ModuleList) -> None:
        super().set_encoder_layers(hf, layers)
        hf.config.layer_types = [layer.attention_type for layer in layers]
        setattr(hf.config, FIRST_NORM, not isinstance(layers[0].attn_norm, nn.Identity))

    def adapt_(self, hf: nn.Module) -> None:
        """A model rebuilt from a stored architecture whose first kept layer normalizes before its attention
        gets that norm back (transformers builds layer 0 without one)."""
        first = self.encoder_layers(hf)[0]
        if getattr(hf.config, FIRST_NORM, False) and isinstance(first.attn_norm, nn.Identity):
            cfg = hf.config
            first.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps, bias=cfg.norm_bias)


MODERNBERT = ModernBertFamily(
    "modernbert", ("modernbert",),
    layers="layers",
    word_embeddings="embeddings.tok_embeddings",
    position_embeddings=None,
    attention="attn",
    head_rows=("attn.Wqkv",),
    attention_out="attn.Wo",
    ffn_in="mlp.Wi",
    ffn_out="mlp.Wo",
    head_size_attr="head_dim",
    all_heads_attr=None,
    token_types=False,
)
