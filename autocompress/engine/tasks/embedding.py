"""Sentence embeddings: the encoder's mean-pooled last hidden state (as sentence-transformers pools
all-MiniLM-L6-v2), distilled from the teacher's embeddings of unlabeled text (mean squared error plus
cosine distance), scored zero-shot as sentence-transformers users do: the Spearman (and Pearson)
correlation of two sentences' cosine similarity with a gold similarity score. Validation and test rows come
in pairs (rows 2i and 2i + 1, both labelled with the pair's score). The constant predictor embeds every
sentence alike, which ranks no pair above another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Task, correlations, sequence_head
from .regression import float_labels

if TYPE_CHECKING:
    import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's real (unpadded) token vectors."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def pair_cosines(outputs: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows 2i and 2i + 1."""
    a, b = outputs[0::2].astype(np.float64), outputs[1::2].astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class Embedding(Task):
    def owns(self, hf) -> bool:
        name = type(hf).__name__
        return not sequence_head(hf) and not name.endswith("ForTokenClassification") and "For" not in name

    def is_task_model(self, config) -> bool:
        return True  # any encoder embeds text; it is distilled as it is

    def auto_class(self):
        from transformers import AutoModel

        return AutoModel

    def configure_(self, config, label_names):
        pass

    def head_mismatch(self, config, label_names):
        return None

    def adapt_(self, hf):
        if getattr(hf, "pooler", None) is not None:  # the [CLS] pooler is not part of a mean-pooled embedding
            hf.pooler = None

    def output(self, out, attention_mask):
        return mean_pool(out.last_hidden_state, attention_mask)

    def loss(self, student, teacher, batch, temperature, alpha):
        import torch.nn.functional as F

        if teacher is None:
            raise ValueError("an embedding task learns from the teacher's embeddings only; give teacher outputs")
        return F.mse_loss(student, teacher) + (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()

    def label_values(self, values, names, where):
        return float_labels(values, where)

    def strata(self, labels):
        return np.round(labels).astype(np.int64)

    def metrics(self, outputs, rows, label_names):
        return correlations(pair_cosines(outputs), rows.labels[0::2])

    def constant_outputs(self, train, rows, label_names):
        return "", np.ones((len(rows), 1), dtype=np.float32)  # the task's `constant` says it all

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        return {"embedding": [round(float(v), 6) for v in output]}


EMBEDDING = Embedding(name="embedding", scores=("spearman", "pearson"), metric="spearman",
                      constant="one vector for every sentence", pairs_as_rows=True, labelled_training=False)
