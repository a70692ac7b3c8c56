"""The architecture spec that rebuilds a compressed model from its stored bytes.

After layer, neuron and vocabulary cuts, layers differ in head count and FFN width, which no family's
plain config can express: `Architecture` records the config and what each technique adds (`describe`),
and `build` makes an empty model of exactly those shapes (each technique's `rebuild_`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .model import Classifier
from .techniques import describe, rebuild_


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
    config = model.config.to_dict()
    for k in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        config.pop(k, None)
    task = model.task.name  # left out for classification, as stored before there were other tasks
    return Architecture(config=config, parts={**describe(model), **model.family.describe(model.hf),
                                              **({"task": task} if task != "classification" else {})})


def build(arch: Architecture, kept_tokens: torch.Tensor | None = None) -> Classifier:
    """An untrained Classifier with exactly the shapes of `arch` (load weights into it)."""
    from transformers import AutoConfig

    from .tasks import get_task

    cfg = dict(arch.config)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    hf = get_task(arch.parts.get("task", "classification")).auto_class().from_config(config)
    model = Classifier(hf).eval()
    rebuild_(model, arch.parts, kept_tokens)
    model.family.rebuild_(model.hf, arch.parts)
    return model
