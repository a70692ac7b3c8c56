"""The model families the engine can compress: one module each, one line each in `FAMILIES`.

A transformers config's `model_type` picks the family (as `AutoModel` picks a modeling file). Adding a
family: a module with its `Family` (where its parts live, see `base.py`), one line here, and its tiny
model in `testing.TINY_FAMILIES`.
"""

from __future__ import annotations

from .base import Family
from .bert import BERT
from .deberta_v2 import DEBERTA_V2
from .distilbert import DISTILBERT
from .electra import ELECTRA
from .modernbert import MODERNBERT
from .mpnet import MPNET
from .roberta import ROBERTA

FAMILIES: tuple[Family, ...] = (BERT, ROBERTA, DISTILBERT, ELECTRA, DEBERTA_V2, MPNET, MODERNBERT)

_BY_TYPE = {t: f for f in FAMILIES for t in f.model_types}


def supported_types() -> list[str]:
    """Every `model_type` some family takes, in registry order."""
    return [t for f in FAMILIES for t in f.model_types]


def family_for(model_type: str | None) -> Family | None:
    """The family of `model_type` (None: no family takes it)."""
    return _BY_TYPE.get(model_type or "")


def family_of(config) -> Family:
    """The family of a transformers config; a model type no family takes is a ValueError naming them."""
    found = family_for(getattr(config, "model_type", None))
    if found is None:
        raise ValueError(f"model type {getattr(config, 'model_type', None)!r} is not supported; supported: "
                         f"{', '.join(supported_types())}")
    return found


__all__ = ["FAMILIES", "Family", "family_for", "family_of", "supported_types"]
