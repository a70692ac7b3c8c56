"""ELECTRA discriminators: BERT's layer layout (embeddings may be narrower and projected up, which the
embedding table's own size takes care of)."""

from .base import Family

ELECTRA = Family("electra", ("electra",))
