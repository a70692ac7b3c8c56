"""Regression on a row (or sentence pair): one float per row (STS-B's similarity score), distilled with
mean squared error on the teacher's output, scored in Pearson and Spearman correlation; the constant
predictor says the training rows' mean, which correlates with nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError
from .base import Task, correlations, sequence_head


def float_labels(values: list, where: str) -> np.ndarray:
    """A label column as float32 (a blank or non-numeric value is a DataError naming its row)."""
    out = np.empty(len(values), dtype=np.float32)
    for j, v in enumerate(values):
        try:
            x = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            raise DataError(f"{where}: row {j + 1} has label {v!r}, not a number; a regression task needs a "
                            "number in every row (fix the row or task.label)")
        out[j] = x
    return out


@dataclass(frozen=True)
class Regression(Task):
    def owns(self, hf) -> bool:
        return sequence_head(hf) and getattr(hf.config, "problem_type", None) == "regression"

    def is_task_model(self, config) -> bool:
        return (any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
                and config.num_labels == 1)

    def auto_class(self):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def configure_(self, config, label_names):
        config.num_labels = 1
        config.problem_type = "regression"

    def head_mismatch(self, config, label_names):
        return None if config.num_labels == 1 else f"has {config.num_labels} outputs, not the one a regression needs"

    def loss(self, student, teacher, batch, temperature, alpha):
        import torch.nn.functional as F

        hard = F.mse_loss(student[:, 0], batch["labels"].to(student.dtype))
        if teacher is None or alpha == 0:
            return hard
        return alpha * F.mse_loss(student, teacher) + (1 - alpha) * hard

    def label_values(self, values, names, where):
        return float_labels(values, where)

    def pseudo_labels(self, outputs):
        return np.asarray(outputs, dtype=np.float32).reshape(len(outputs))

    def strata(self, labels):
        return np.round(labels).astype(np.int64)

    def metrics(self, outputs, rows, label_names):
        return correlations(outputs[:, 0], rows.labels)

    def constant_outputs(self, train, rows, label_names):
        mean = float(np.mean(train.labels))
        return f"{mean:.3f}", np.full((len(rows), 1), mean, dtype=np.float32)

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        return {"score": float(output[0])}


REGRESSION = Regression(name="regression", scores=("pearson", "spearman"), metric="spearman",
                        constant="training mean")
