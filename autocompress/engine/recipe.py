"""Recipe: one frozen, validated, serializable description of a compression candidate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from ._validation import read_yaml, validate
from .techniques import TECHNIQUES


# pydantic lists the fields of the last base first: reversed, the keys follow the registry's order
class Recipe(*reversed([t.Fields for t in TECHNIQUES])):  # type: ignore[misc]
    """Every knob of one candidate: the fields of every registered technique (see
    `engine/techniques/`). Fractions are of the teacher's sizes; None means 'keep all'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
        """A short hash of the fields that differ from their defaults (a new technique's fields,
        which default to off, leave earlier recipes' fingerprints as they were)."""
        d = self.model_dump(exclude_defaults=True)
        if d.get("layers") is not None:
            d["layers"] = list(d["layers"])
        blob = json.dumps(d, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "Recipe":
        """A new validated Recipe with some fields changed."""
        return Recipe.from_dict({**self.to_dict(), **changes})

