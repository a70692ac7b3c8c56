"""Students built from teacher layers, and the architecture spec that rebuilds a pruned model.

A student keeps a chosen subset of the teacher's encoder layers (weights copied). After neuron
and vocabulary pruning, layers differ in head count and FFN width, which a plain BertConfig
cannot express: `Architecture` records them, and `build` makes an empty model of that shape.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .model import Classifier
from .structured import layer_shapes, prune_heads_, prune_neurons_


def evenly_spaced_layers(n_teacher: int, depth: int) -> tuple[int, ...]:
    """`depth` teacher layer indices spread over the stack, first layer included (6, 3 -> 0, 2, 4)."""
    if not 1 <= depth <= n_teacher:
        raise ValueError(f"depth must be between 1 and {n_teacher}, got {depth}")
    return tuple(int(i * n_teacher / depth) for i in range(depth))


def select_layers(teacher: Classifier, layers: Sequence[int] | None) -> Classifier:
    """A copy of `teacher` that keeps only encoder layers `layers` (all when None)."""
    student = copy.deepcopy(teacher)
    if layers is None:
        return student
    n = len(teacher.encoder_layers)
    bad = [i for i in layers if i >= n]
    if bad:
        raise ValueError(f"recipe layers {list(bad)} do not exist: the teacher has layers 0..{n - 1}")
    kept = nn.ModuleList([student.encoder_layers[i] for i in layers])
    for new_idx, layer in enumerate(kept):
        attn = layer.attention.self
        if hasattr(attn, "layer_idx"):
            attn.layer_idx = new_idx
    student.hf.base_model.encoder.layer = kept
    student.hf.config.num_hidden_layers = len(kept)
    return student


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild an empty student of the right shapes."""

    config: dict[str, Any]  # the transformers config (num_hidden_layers, vocab_size already set)
    heads: tuple[int, ...]
    ffn: tuple[int, ...]
    vocab_full_size: int | None = None  # set when the vocabulary was pruned
    unk_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "heads": list(self.heads), "ffn": list(self.ffn),
                "vocab_full_size": self.vocab_full_size, "unk_id": self.unk_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Architecture":
        return cls(d["config"], tuple(d["heads"]), tuple(d["ffn"]), d.get("vocab_full_size"), d.get("unk_id"))


def architecture(model: Classifier) -> Architecture:
    shapes = layer_shapes(model)
    config = model.config.to_dict()
    for k in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        config.pop(k, None)
    pruned_vocab = model.kept_tokens is not None
    return Architecture(
        config=config,
        heads=tuple(h for h, _ in shapes),
        ffn=tuple(f for _, f in shapes),
        vocab_full_size=int(model.token_map.numel()) if pruned_vocab else None,
        unk_id=model.unk_id if pruned_vocab else None,
    )


def build(arch: Architecture, kept_tokens: torch.Tensor | None = None) -> Classifier:
    """An untrained Classifier with exactly the shapes of `arch` (load weights into it)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = dict(arch.config)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    hf = AutoModelForSequenceClassification.from_config(config)
    model = Classifier(hf).eval()
    prune_heads_(model, [range(h) for h in arch.heads])
    prune_neurons_(model, [range(f) for f in arch.ffn])
    if arch.vocab_full_size is not None:
        if kept_tokens is None:
            raise ValueError("architecture has a pruned vocabulary but no kept token list was given")
        model.set_vocab(kept_tokens, arch.vocab_full_size, int(arch.unk_id))
    return model
