"""Single-label sequence classification: a label per row (or sentence pair), scored in accuracy, macro F1
and Matthews correlation; the constant predictor says the training rows' most frequent label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .base import Task, sequence_head, soft_kl

if TYPE_CHECKING:
    import torch

    from ..batches import Encoded


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and Matthews correlation of argmax predictions."""
    pred = logits.argmax(-1)
    k = max(int(labels.max()), int(pred.max()), logits.shape[-1] - 1) + 1
    cm = np.zeros((k, k), dtype=np.float64)
    np.add.at(cm, (labels, pred), 1)
    tp = np.diag(cm)
    precision = np.divide(tp, cm.sum(0), out=np.zeros(k), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros(k), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    # multiclass MCC (Gorodkin): (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
    s, c = cm.sum(), tp.sum()
    p_k, t_k = cm.sum(0), cm.sum(1)
    denom = np.sqrt((s * s - (p_k**2).sum()) * (s * s - (t_k**2).sum()))
    mcc = float((c * s - (p_k * t_k).sum()) / denom) if denom > 0 else 0.0
    return {"accuracy": float(c / s), "f1": float(f1.mean()), "mcc": mcc}


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(z_T/T) || softmax(z_S/T)) + (1 - alpha) * CE(z_S, labels).

    Labels of -100 are ignored (per-token tasks mark the tokens that carry no label so)."""
    import torch.nn.functional as F

    hard = F.cross_entropy(student_logits, labels, ignore_index=-100)
    if teacher_logits is None or alpha == 0:
        return hard
    return alpha * soft_kl(student_logits, teacher_logits, temperature) + (1 - alpha) * hard


def label_ids(values: list, names: tuple[str, ...], where: str) -> np.ndarray:
    """Label values as indices into `names` (a blank or unknown label is a DataError naming the row)."""
    index = {n: i for i, n in enumerate(names)}
    out = np.empty(len(values), dtype=np.int64)
    for j, v in enumerate(values):
        if v is None or (isinstance(v, str) and not v.strip()):
            raise DataError(f"{where}: row {j + 1} has a blank label; fill it in or remove the row")
        key = str(v)
        if key not in index:
            raise DataError(f"{where}: label '{v}' is not one of {list(names)}; fix task.labels")
        out[j] = index[key]
    return out


def names_of(values: list) -> tuple[str, ...]:
    """Label names found in the data: 0..max for integer labels, else the values sorted."""
    found = {v for v in values if v is not None and str(v).strip()}
    if found and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in found):
        return tuple(str(i) for i in range(max(found) + 1))
    return tuple(sorted(str(v) for v in found))


@dataclass(frozen=True)
class Classification(Task):
    def owns(self, hf) -> bool:
        return sequence_head(hf) and getattr(hf.config, "problem_type", None) != "regression"

    def is_task_model(self, config) -> bool:
        return (any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
                and getattr(config, "problem_type", None) != "regression")

    def auto_class(self):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def loss(self, student, teacher, batch, temperature, alpha):
        return kd_loss(student, teacher, batch["labels"], temperature, alpha)

    def label_values(self, values, names, where):
        return label_ids(values, names, where)

    def pseudo_labels(self, outputs):
        return np.asarray(outputs).argmax(axis=-1).astype(np.int64)

    def label_names(self, values):
        return names_of(values)

    def metrics(self, outputs: np.ndarray, rows: Encoded, label_names: Sequence[str]) -> dict[str, float]:
        return classification_metrics(outputs, rows.labels)

    def constant_outputs(self, train, rows, label_names):
        label = int(np.bincount(train.labels, minlength=len(label_names)).argmax())
        out = np.zeros((len(rows), len(label_names)), dtype=np.float32)
        out[:, label] = 1.0
        return label_names[label], out

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        p = np.exp(output - output.max())
        p /= p.sum()
        return {"label": label_names[int(output.argmax())], "probability": float(p.max()),
                "probabilities": {str(n): float(v) for n, v in zip(label_names, p)}}


CLASSIFICATION = Classification(name="classification", scores=("accuracy", "f1", "mcc"), metric="accuracy",
                                constant="majority class")
