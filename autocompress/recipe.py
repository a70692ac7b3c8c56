"""Recipe: one frozen, validated, serializable description of a compression candidate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ._validation import read_yaml, validate

Bits = Literal[32, 16, 8, 4, 2, 1]


class Recipe(BaseModel):
    """Every knob of one candidate. Fractions are of the teacher's sizes; None means 'keep all'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # student size
    layers: tuple[int, ...] | None = Field(None, description="teacher layer indices kept, in order")
    heads_keep: float = Field(1.0, gt=0.0, le=1.0, description="fraction of attention heads kept per layer")
    ffn_keep: float = Field(1.0, gt=0.0, le=1.0, description="fraction of FFN neurons kept per layer")
    vocab_prune: bool = Field(False, description="keep only the tokens the training data uses")
    # distillation
    temperature: float = Field(2.0, gt=0.0, le=50.0)
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="weight of the soft (KD) loss")
    hidden_mse: float = Field(0.0, ge=0.0, description="weight of hidden-state MSE on mapped layers")
    # unstructured weight pruning
    prune_ratio: float = Field(0.0, ge=0.0, le=0.99, description="target sparsity of encoder weights")
    prune_threshold: float | None = Field(None, gt=0.0, description="prune |w| below this instead")
    prune_scope: Literal["global", "layer"] = "global"
    prune_schedule: Literal["oneshot", "gradual"] = "gradual"
    # quantization
    bits: Bits = 32
    embedding_bits: Bits | None = Field(None, description="bit-width of embeddings (None: same as bits)")
    # training
    train_steps: int = Field(0, ge=0, le=1_000_000)
    lr: float = Field(5e-5, gt=0.0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)
    train_subset: int | None = Field(None, ge=1, description="sample this many training examples")
    seed: int = 0

    @pydantic.field_validator("layers")
    @classmethod
    def _layers_valid(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("keep at least one layer")
        if any(i < 0 for i in v) or len(set(v)) != len(v):
            raise ValueError("layer indices must be distinct and >= 0")
        return tuple(sorted(v))

    @pydantic.model_validator(mode="after")
    def _prune_consistent(self) -> "Recipe":
        if self.prune_threshold is not None and self.prune_ratio > 0:
            raise ValueError("set prune_ratio or prune_threshold, not both")
        return self

    # ---- derived -------------------------------------------------------------------------
    @property
    def emb_bits(self) -> int:
        return self.embedding_bits if self.embedding_bits is not None else self.bits

    @property
    def prunes_weights(self) -> bool:
        return self.prune_ratio > 0 or self.prune_threshold is not None

    # ---- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump()
        if d["layers"] is not None:
            d["layers"] = list(d["layers"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> "Recipe":
        return validate(cls, data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        data = read_yaml(path, "recipe", "pass an existing YAML or JSON file") or {}
        return cls.from_dict(data, str(path))

    def fingerprint(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "Recipe":
        """A new validated Recipe with some fields changed."""
        return Recipe.from_dict({**self.to_dict(), **changes})

