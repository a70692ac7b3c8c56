"""Students built from teacher layers, and the architecture spec that rebuilds a pruned model.

A student keeps a chosen subset of the teacher's encoder layers (weights copied). After neuron
and vocabulary pruning, layers differ in head count and FFN width, which a plain BertConfig
(or any family's config) cannot express: `Architecture` records them, and `build` makes an empty model of that shape.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .model import Classifier


def evenly_spaced_layers(n_teacher: int, depth: int) -> tuple[int, ...]:
    """`depth` teacher layer indices spread over the stack, first layer included (6, 3 -> 0, 2, 4)."""
    if not 1 <= depth <= n_teacher:
        raise ValueError(f"depth must be between 1 and {n_teacher}, got {depth}")
    return tuple(int(i * n_teacher / depth) for i in range(depth))


def keep_layers_(model: Classifier, layers: Sequence[int] | None) -> None:
    """Keep only encoder layers `layers` of `model` (all when None), in place."""
    if layers is None:
        return
    n = len(model.encoder_layers)
    bad = [i for i in layers if i >= n]
    if bad:
        raise ValueError(f"recipe layers {list(bad)} do not exist: the teacher has layers 0..{n - 1}")
    family = model.family
    kept = nn.ModuleList([model.encoder_layers[i] for i in layers])
    for new_idx, layer in enumerate(kept):
        family.set_layer_index(layer, new_idx)
    family.set_encoder_layers(model.hf, kept)


def select_layers(teacher: Classifier, layers: Sequence[int] | None) -> Classifier:
    """A copy of `teacher` that keeps only encoder layers `layers` (all when None)."""
    student = copy.deepcopy(teacher)
    keep_layers_(student, layers)
    return student


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild an empty student of the right shapes: the transformers config
    (layer count and vocabulary size already set) and the keys each technique adds (heads and FFN
    width per layer, the pruned vocabulary's size, low-rank factors; see `techniques/`)."""

    config: dict[str, Any]
    parts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, **self.parts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Architecture":
        return cls(d["config"], {k: v for k, v in d.items() if k != "config"})


def architecture(model: Classifier) -> Architecture:
    from .techniques import describe

    config = model.config.to_dict()
    for k in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        config.pop(k, None)
    return Architecture(config=config, parts=describe(model))


def build(arch: Architecture, kept_tokens: torch.Tensor | None = None) -> Classifier:
    """An untrained Classifier with exactly the shapes of `arch` (load weights into it)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from .techniques import rebuild_

    cfg = dict(arch.config)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    hf = AutoModelForSequenceClassification.from_config(config)
    model = Classifier(hf).eval()
    rebuild_(model, arch.parts, kept_tokens)
    return model
