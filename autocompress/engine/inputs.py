"""What every candidate of one experiment shares: the task teacher, its cached logits, the data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .measure_config import MeasureConfig
from .batches import TaskData
from .model import Classifier


@dataclass(frozen=True)
class EngineInputs:
    """What every candidate shares: the task teacher, its cached logits, the data, how to measure."""

    teacher: Classifier
    data: TaskData
    teacher_logits: torch.Tensor  # [train rows, labels]
    special_ids: tuple[int, ...]
    unk_id: int
    # the teacher's score in `metric` on the validation rows candidates are scored on
    # (measure.eval_subset): what retention divides by
    teacher_score: float
    task_files: Path  # task.json and tokenizer/: copied into every candidate, counted in its bytes
    metric: str = "accuracy"  # the task's metric: the search's objective
    measure: MeasureConfig = MeasureConfig()
    runtime: str = "torch"
    importance_batches: int = 8
    # the task's elastic network and its id (`elastic_net.py`), for recipes with `elastic: true`; None
    # when the experiment did not prepare one
    elastic: Classifier | None = None
    elastic_id: str | None = None
    # where candidates train (`engine/device.py`: a resolved torch device name) and whether under bfloat16
    # autocast there; they are stored and measured on the CPU whatever it is
    train_device: str = "cpu"
    train_bf16: bool = False
