"""Token classification (named entities): a tag per word, learned and scored on each word's first
sub-word token (the other sub-words and the special tokens carry label -100 and are ignored), distilled
per token, scored in entity-level micro F1 with exact spans; the constant predictor tags every word with
the most frequent tag (O), which finds no entity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError
from .base import Task
from .classification import kd_loss

IGNORED = -100  # the label of a token that is not a word's first sub-word


def tag_ids(sentences: list, names: tuple[str, ...], where: str) -> list[np.ndarray]:
    """Each sentence's tags as indices into `names` (a tag outside them is a DataError)."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for j, tags in enumerate(sentences):
        unknown = next((t for t in tags if t not in index), None)
        if unknown is not None:
            raise DataError(f"{where}: sentence {j + 1} has tag '{unknown}', not one of {list(names)}; "
                            "fix task.labels")
        out.append(np.array([index[t] for t in tags], dtype=np.int64))
    return out


def word_tags(outputs: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(gold, predicted) tags of a row's words: its tokens that carry a label."""
    words = labels != IGNORED
    return ([label_names[i] for i in labels[words]], [label_names[i] for i in outputs[words].argmax(-1)])


@dataclass(frozen=True)
class TokenClassification(Task):
    def owns(self, hf) -> bool:
        return type(hf).__name__.endswith("ForTokenClassification")

    def is_task_model(self, config) -> bool:
        return any(a.endswith("ForTokenClassification") for a in (config.architectures or []))

    def auto_class(self):
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def targets(self, teacher_outputs, batch):
        return teacher_outputs[batch["token_index"].clamp_min(0)]

    def loss(self, student, teacher, batch, temperature, alpha):
        real = batch["attention_mask"].bool()
        return kd_loss(student[real], None if teacher is None else teacher[real], batch["labels"][real],
                       temperature, alpha)

    def label_values(self, values, names, where):
        return tag_ids(values, names, where)

    def label_names(self, values):
        found = {t for tags in values for t in tags}
        return tuple(sorted(found, key=lambda t: (t != "O", t[2:], t)))

    def strata(self, labels):
        return np.zeros(len(labels), dtype=np.int64)

    def metrics(self, outputs, rows, label_names):
        from .entities import entity_scores

        gold, pred = [], []
        for i in range(len(rows)):
            a, b = rows.offsets[i], rows.offsets[i + 1]
            g, p = word_tags(outputs[a:b], rows.labels[a:b], label_names)
            gold.append(g)
            pred.append(p)
        return entity_scores(gold, pred)

    def constant_outputs(self, train, rows, label_names):
        tags = train.labels[train.labels != IGNORED]
        label = int(np.bincount(tags, minlength=len(label_names)).argmax())
        out = np.zeros((len(rows.ids), len(label_names)), dtype=np.float32)
        out[:, label] = 1.0
        return label_names[label], out

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        return {"tags": [label_names[i] for i in output.argmax(-1)]}


TOKEN_CLASSIFICATION = TokenClassification(
    name="token_classification", scores=("entity_f1", "entity_precision", "entity_recall", "token_accuracy"),
    metric="entity_f1", constant="most frequent tag", per_token=True)
