"""A training run's checkpoint, so that a long run killed half-way goes on from its last one.

`distill.train_` saves the model, the optimizer, the learning-rate schedule and the RNG that drives dropout
every `every` steps to `<folder>/checkpoint.pt` (written atomically), and a run that finds one for the same
`key` starts after its step, its batches advanced to the same place: the run ends where an uninterrupted one
would have ended. A checkpoint of another key (another recipe, other rows) is ignored and overwritten.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ._io import atomic_path

FILE = "checkpoint.pt"


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    key: str  # what the run is: only a checkpoint with this key is resumed
    every: int = 200  # steps between two saves

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be at least 1, got {self.every}")

    def save(self, step: int, model: nn.Module, optimizer, schedule) -> None:
        state = {"key": self.key, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict(), "rng": torch.get_rng_state()}
        with atomic_path(self.folder / FILE) as tmp:
            torch.save(state, tmp)

    def _saved(self, mmap: bool = False) -> dict | None:
        """The saved state of this key's run, or None (no file, or another key's). With `mmap` the tensors are
        mapped, not read: enough to look at the step."""
        path = self.folder / FILE
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        return state if state.get("key") == self.key else None

    def saved_step(self) -> int:
        """The step a saved run of this key reached (0: none)."""
        state = self._saved(mmap=True)
        return int(state["step"]) if state is not None else 0

    def restore_(self, model: nn.Module, optimizer, schedule) -> int:
        """Load the saved run into `model`, `optimizer` and `schedule`; the step it had reached (0: nothing
        to resume)."""
        state = self._saved()
        if state is None:
            return 0
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        return int(state["step"])

    def clear(self) -> None:
        """Remove the checkpoint (the run finished and its result is kept elsewhere)."""
        shutil.rmtree(self.folder, ignore_errors=True)
