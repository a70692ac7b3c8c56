"""What the engine needs to know about one task type, and nothing else knows: its head, its loss, its scores.

A `Task` says which transformers head a model of this task has (and how to tell a model that already has
it), what one output row is, how a student learns from the teacher's outputs, how outputs are scored, what
a constant predictor scores (the floor a candidate must beat to be more than a constant function), how
labels are read from a data file, and what `predict` makes of an output row. The engine, the data loader,
the search and the export ask the task; none of them branches on a task's name.

Outputs are float32 rows, one per data row (`[rows, width]`); a per-token task has one row per token,
in the layout of `Encoded.ids` (`[tokens, labels]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from ..batches import Encoded


def sequence_head(hf) -> bool:
    return type(hf).__name__.endswith("ForSequenceClassification")


@dataclass(frozen=True)
class Task:
    """One task type; subclasses override what differs."""

    name: str  # the experiment's `task.type`
    scores: tuple[str, ...]  # what every candidate is scored in; `task.metric` names one
    metric: str  # the default objective
    constant: str  # what the constant predictor is, for reports ("majority class")
    per_token: bool = False  # outputs and labels are per token (layout of Encoded.ids)
    pairs_as_rows: bool = False  # validation and test rows come in pairs (2i, 2i + 1) scored together
    labelled_training: bool = True  # training rows need labels (an embedding task distills unlabeled text)

    # ---- the model ------------------------------------------------------------------------------

    def owns(self, hf) -> bool:
        """Whether a loaded transformers model is a model of this task (its head and config say so)."""
        raise NotImplementedError

    def is_task_model(self, config) -> bool:
        """Whether a teacher's config already has this task's head (then it is not fine-tuned)."""
        raise NotImplementedError

    def auto_class(self):
        """The transformers auto class that loads or builds a model of this task."""
        raise NotImplementedError

    def configure_(self, config, label_names: Sequence[str]) -> None:
        """Set the head's shape on a config before a model of this task is built from it."""
        config.num_labels = len(label_names)

    def head_mismatch(self, config, label_names: Sequence[str]) -> str | None:
        """Why a task model's head does not fit the task's labels (None: it fits)."""
        if config.num_labels != len(label_names):
            return f"has {config.num_labels} labels but the task has {len(label_names)}"
        return None

    def adapt_(self, hf) -> None:
        """Make a loaded or built model of this task ready for the engine (default: nothing to do)."""

    def output(self, out, attention_mask: torch.Tensor) -> torch.Tensor:
        """The output rows of a forward pass (default: the head's logits)."""
        return out.logits

    # ---- training -------------------------------------------------------------------------------

    def targets(self, teacher_outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The teacher's cached outputs for the rows of `batch`, shaped like the student's output."""
        return teacher_outputs[batch["index"]]

    def loss(self, student: torch.Tensor, teacher: torch.Tensor | None, batch: dict[str, torch.Tensor],
             temperature: float, alpha: float) -> torch.Tensor:
        """The distillation loss of a batch: `alpha` weighs learning from the teacher, 1 - alpha the labels."""
        raise NotImplementedError

    # ---- data -----------------------------------------------------------------------------------

    def label_values(self, values: list, names: tuple[str, ...] | None, where: str) -> np.ndarray:
        """A data file's label column as the label array the task trains on (bad values: a DataError)."""
        raise NotImplementedError

    def label_names(self, values: list) -> tuple[str, ...]:
        """The label names of a task with no declared ones (default: none; labels are numbers)."""
        return ()

    def strata(self, labels: np.ndarray) -> np.ndarray:
        """Groups a held-out validation split keeps the shares of (default: the labels themselves)."""
        return labels

    def pseudo_labels(self, outputs: np.ndarray) -> np.ndarray | None:
        """Labels for new text from the teacher's outputs on it (augmentation), one per row; None where the
        task has none to give (default)."""
        return None

    # ---- scoring --------------------------------------------------------------------------------

    def metrics(self, outputs: np.ndarray, rows: Encoded, label_names: Sequence[str]) -> dict[str, float]:
        """Every score in `scores` of `outputs` against the labels of `rows`."""
        raise NotImplementedError

    def constant_outputs(self, train: Encoded, rows: Encoded,
                         label_names: Sequence[str]) -> tuple[str, np.ndarray]:
        """What the constant predictor fitted on the training rows says, and its outputs for `rows`."""
        raise NotImplementedError

    # ---- predict --------------------------------------------------------------------------------

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        """What `predict` says about one row's output (a per-token task gets the row's token outputs)."""
        raise NotImplementedError


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), summed over classes, averaged over rows."""
    import torch.nn.functional as F

    t = temperature
    return t * t * F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                            log_target=True, reduction="batchmean")


def correlations(predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation; 0 for a constant prediction (no correlation to measure)."""
    from scipy.stats import pearsonr, spearmanr

    predicted = np.asarray(predicted, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(gold) == 0:
        return {"pearson": 0.0, "spearman": 0.0}
    return {"pearson": float(pearsonr(predicted, gold).statistic),
            "spearman": float(spearmanr(predicted, gold).statistic)}
