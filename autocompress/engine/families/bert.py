"""BERT (MiniLM and every checkpoint of BERT's layout): the layout `Family` describes by default."""

from .base import Family

BERT = Family("bert", ("bert",))
