"""What the engine needs to know about one model family, and nothing else knows: where its parts live.

A `Family` names, as dotted attribute paths, where a transformers model of that family keeps its encoder
layers, its embedding tables and, inside one layer, the attention's per-head projections, the attention
output, the FFN's two linears and the module that holds the head count. Techniques, the elastic network and
the runtimes go through these accessors; no module outside `families/` names a family's attributes.

Paths of `layers` and `embeddings` start at the model's `base_model` (`model.bert`, `model.roberta`, ...);
paths of the parts of a layer start at the layer. A family that cannot take a technique says so in
`unsupported` (the recipe keys it cannot take, e.g. `heads_keep`), with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def get_path(root: nn.Module, path: str):
    for part in path.split("."):
        root = getattr(root, part)
    return root


def set_path(root: nn.Module, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        root = getattr(root, part)
    setattr(root, last, value)


@dataclass(frozen=True)
class Family:
    """One model family (one or more transformers `model_type`s sharing a layout)."""

    name: str
    model_types: tuple[str, ...]
    layers: str = "encoder.layer"  # from base_model: the ModuleList of encoder layers
    embeddings: str = "embeddings"  # from base_model: the embeddings module
    word_embeddings: str = "embeddings.word_embeddings"  # from base_model
    position_embeddings: str | None = "embeddings.position_embeddings"  # from base_model; None: relative only
    attention: str = "attention.self"  # from a layer: the module that holds the head count
    head_rows: tuple[str, ...] = ("attention.self.query", "attention.self.key", "attention.self.value")
    attention_out: str = "attention.output.dense"  # input columns are the heads' outputs
    ffn_in: str = "intermediate.dense"
    ffn_out: str = "output.dense"
    heads_attr: str = "num_attention_heads"  # on the attention module
    head_size_attr: str = "attention_head_size"
    all_heads_attr: str | None = "all_head_size"
    config_heads: str = "num_attention_heads"
    config_ffn: str = "intermediate_size"
    config_layers: str = "num_hidden_layers"
    token_types: bool = True  # the model's forward takes token_type_ids
    positions_from_padding: bool = False  # position ids count non-padding tokens from `pad_token_id` + 1
    unsupported: Mapping[str, str] = field(default_factory=dict)  # recipe key -> why the family cannot take it

    # ---- the model ------------------------------------------------------------------------------

    def encoder_layers(self, hf: nn.Module) -> nn.ModuleList:
        return get_path(hf.base_model, self.layers)

    def set_encoder_layers(self, hf: nn.Module, layers: nn.ModuleList) -> None:
        set_path(hf.base_model, self.layers, layers)
        setattr(hf.config, self.config_layers, len(layers))

    def embeddings_module(self, hf: nn.Module) -> nn.Module:
        return get_path(hf.base_model, self.embeddings)

    def word_table(self, hf: nn.Module) -> nn.Embedding:
        return get_path(hf.base_model, self.word_embeddings)

    def set_word_table(self, hf: nn.Module, table: nn.Embedding) -> None:
        set_path(hf.base_model, self.word_embeddings, table)
        hf.config.vocab_size = table.num_embeddings

    def embedding_tables(self, hf: nn.Module) -> list[nn.Embedding]:
        """The tables whose bytes count: words, and absolute positions where the family has them."""
        paths = [self.word_embeddings] + ([self.position_embeddings] if self.position_embeddings else [])
        found = [getattr_path_or_none(hf.base_model, p) for p in paths]
        return [t for t in found if isinstance(t, nn.Embedding)]

    def config_heads_count(self, config) -> int:
        return int(getattr(config, self.config_heads))

    def config_ffn_size(self, config) -> int:
        return int(getattr(config, self.config_ffn))

    def forward_inputs(self, hf: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       token_type_ids: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The keyword inputs of the family's forward.

        Where the family counts positions from the padding id (RoBERTa: the first token is at
        `pad_token_id + 1`), they are given here: `input_ids` may be remapped to a pruned table, whose
        padding id is no longer the family's. Rows are padded on the right, so the tokens that count
        are at `pad_token_id + 1 + their index` (padding positions differ, and are masked out).
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types and token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        if self.positions_from_padding:
            first = int(hf.config.pad_token_id) + 1
            steps = torch.arange(input_ids.shape[1], device=input_ids.device) + first
            inputs["position_ids"] = steps.unsqueeze(0).expand_as(input_ids)
        return inputs

    def adapt_(self, hf: nn.Module) -> None:
        """Make `hf` fit every runtime without changing what it computes. A token-type table of one row
        (RoBERTa's: every token adds it) gets a second row, a copy, because OpenVINO's int8 compilation
        failed on a gather from a one-row table; only type 0 is ever fed."""
        if not self.token_types:
            return
        table = getattr_path_or_none(hf.base_model, "embeddings.token_type_embeddings")
        if isinstance(table, nn.Embedding) and table.num_embeddings == 1:
            wider = nn.Embedding(2, table.embedding_dim).to(table.weight.dtype)
            with torch.no_grad():
                wider.weight.copy_(table.weight.expand(2, -1))
            wider.weight.requires_grad_(table.weight.requires_grad)
            set_path(hf.base_model, "embeddings.token_type_embeddings", wider)
            hf.config.type_vocab_size = 2

    # ---- one layer ------------------------------------------------------------------------------

    def attention_module(self, layer: nn.Module) -> nn.Module:
        return get_path(layer, self.attention)

    def heads(self, layer: nn.Module) -> int:
        return int(getattr(self.attention_module(layer), self.heads_attr))

    def head_size(self, layer: nn.Module) -> int:
        return int(getattr(self.attention_module(layer), self.head_size_attr))

    def set_heads(self, layer: nn.Module, count: int) -> None:
        attn = self.attention_module(layer)
        setattr(attn, self.heads_attr, count)
        if self.all_heads_attr:
            setattr(attn, self.all_heads_attr, count * self.head_size(layer))

    def set_layer_index(self, layer: nn.Module, index: int | None) -> int | None:
        """Give the layer its new position (where the family's attention records one); the old one."""
        attn = self.attention_module(layer)
        old = getattr(attn, "layer_idx", None)
        if old is not None and index is not None:
            attn.layer_idx = index
        return old

    def head_linears(self, layer: nn.Module) -> list[nn.Module]:
        """The projections whose output rows are grouped by head (query, key, value, ...)."""
        return [get_path(layer, p) for p in self.head_paths(layer)]

    def head_paths(self, layer: nn.Module) -> list[str]:
        """The paths of `head_rows` this layer has (DeBERTa's position projections exist only unshared)."""
        return [p for p in self.head_rows if getattr_path_or_none(layer, p) is not None]

    def neurons(self, layer: nn.Module) -> int:
        return int(get_path(layer, self.ffn_out).in_features)

    def head_row_index(self, layer: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        """Rows of each per-head projection that hold the head dims `rows` (indices into heads x head size):
        the same rows, unless the family fuses query, key and value into one projection."""
        return rows

    def ffn_row_index(self, layer: nn.Module, neurons: torch.Tensor) -> torch.Tensor:
        """Rows of the FFN's input linear that feed `neurons`: the same, unless the FFN is gated."""
        return neurons

    def head_weights(self, layer: nn.Module) -> torch.Tensor:
        """[heads x head size, features]: what every per-head projection holds for each head dim, side by side
        (weights with the bias as a last column, float32)."""
        return torch.cat([rows_with_bias(m) for m in self.head_linears(layer)], dim=1)

    def ffn_weights(self, layer: nn.Module) -> torch.Tensor:
        """[neurons, features]: the FFN input linear's rows of each neuron (bias included, float32)."""
        return rows_with_bias(get_path(layer, self.ffn_in))

    def part(self, layer: nn.Module, path: str) -> nn.Module:
        return get_path(layer, path)

    def set_part(self, layer: nn.Module, path: str, module: nn.Module) -> None:
        set_path(layer, path, module)

    def keep_heads_(self, layer: nn.Module, heads: torch.Tensor) -> None:
        """Bookkeeping of a family whose heads carry state outside their projections, before `layer` keeps
        only `heads` (indices into its current heads). Nothing by default."""

    def reorder_heads_(self, layer: nn.Module, order: torch.Tensor) -> None:
        """Bookkeeping, as `keep_heads_`, before `layer`'s heads are put in `order`. Nothing by default."""

    def describe(self, hf: nn.Module) -> dict[str, Any]:
        """Keys this family adds to `architecture.json` (none by default)."""
        return {}

    def rebuild_(self, hf: nn.Module, parts: Mapping[str, Any]) -> None:
        """Give an empty model rebuilt from `architecture.json` what `describe` recorded."""

    def why_not(self, key: str) -> str | None:
        """Why recipe key `key` (e.g. `heads_keep`) cannot be changed from its default here (None: it can)."""
        return self.unsupported.get(key)


def rows_with_bias(linear: nn.Module) -> torch.Tensor:
    """Weight rows with the bias appended as a last column (float32)."""
    w = linear.weight.float()
    if linear.bias is None:
        return w
    return torch.cat([w, linear.bias.float().unsqueeze(1)], dim=1)


def getattr_path_or_none(root: nn.Module, path: str):
    try:
        return get_path(root, path)
    except AttributeError:
        return None
