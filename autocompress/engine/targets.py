"""Which weights a technique acts on: the one selector that pruning, quantization and storage share.

- `encoder_linears`: every `nn.Linear` inside the encoder layers (attention q / k / v / output, the FFN's
  two linears, or their low-rank factors) and the pooler's dense layer;
- `embedding_tables`: the word and (where the family has one) absolute position embedding tables.

Token-type embeddings, LayerNorms, biases and the classifier head are never targets. Keys are
`named_modules()` names, in that order (the order global magnitude pruning ranks ties in).
"""

from __future__ import annotations

from torch import nn

from .model import Classifier


def _in_order(model: Classifier, modules: list[nn.Module]) -> dict[str, nn.Module]:
    wanted = {id(m) for m in modules}
    return {name: m for name, m in model.named_modules() if id(m) in wanted}


def encoder_linears(model: Classifier) -> dict[str, nn.Linear]:
    base = model.hf.base_model
    linears = [m for m in model.encoder_layers.modules() if isinstance(m, nn.Linear)]
    pooler_dense = getattr(getattr(base, "pooler", None), "dense", None)
    if isinstance(pooler_dense, nn.Linear):
        linears.append(pooler_dense)
    return _in_order(model, linears)


def embedding_tables(model: Classifier) -> dict[str, nn.Embedding]:
    return _in_order(model, model.family.embedding_tables(model.hf))
