"""What every candidate of one experiment shares: the task teacher, its cached logits, the data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import MeasureConfig
from ..data import TaskData
from .model import Classifier


@dataclass(frozen=True)
class EngineInputs:
    """What every candidate shares: the task teacher, its cached logits, the data, how to measure."""

    teacher: Classifier
    data: TaskData
    teacher_logits: torch.Tensor  # [train rows, labels]
    special_ids: tuple[int, ...]
    unk_id: int
    # the teacher's accuracy on the rows candidates are scored on (measure.eval_subset): what
    # retention divides by
    teacher_accuracy: float
    measure: MeasureConfig = MeasureConfig()
    runtime: str = "torch"
    importance_batches: int = 8
