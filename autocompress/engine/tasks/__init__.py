"""The task types the engine can compress for: one module each, one line each in `TASKS`.

An experiment's `task.type` picks the task by name; a loaded model's head picks it back (`task_of`), so a
stored student needs no extra record of its task. Adding a task type: a module with its `Task` (see
`base.py`: head, loss, scores, constant predictor, labels, prediction), one line here, and tests on a
tiny model (`tests/engine/test_tasks.py`).
"""

from __future__ import annotations

from .base import Task
from .classification import CLASSIFICATION
from .embedding import EMBEDDING
from .regression import REGRESSION
from .tokens import TOKEN_CLASSIFICATION

TASKS: tuple[Task, ...] = (REGRESSION, CLASSIFICATION, TOKEN_CLASSIFICATION, EMBEDDING)
"""In the order `task_of` asks them (regression before classification: both have a sequence head)."""

_BY_NAME = {t.name: t for t in TASKS}
TASK_NAMES = tuple(t.name for t in TASKS)
SCORE_NAMES = tuple(dict.fromkeys(s for t in TASKS for s in t.scores))
"""Every score some task is measured in: what a stored metrics record may hold."""


def get_task(name: str) -> Task:
    """The task type called `name` (a ValueError naming the known ones otherwise)."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown task type {name!r}; known: {', '.join(TASK_NAMES)}")
    return _BY_NAME[name]


def task_of(hf) -> Task:
    """The task of a transformers model, from its head and config."""
    for task in TASKS:
        if task.owns(hf):
            return task
    raise ValueError(f"{type(hf).__name__} has a head no task type takes; known: {', '.join(TASK_NAMES)}")
