"""The contract every compression technique fulfils, and what they share while a candidate is built.

A technique is one module holding:

- `Fields`: a pydantic model with its recipe keys, their defaults (which mean "off") and their
  validation. The Recipe is the union of every registered technique's fields.
- `check(recipe, n_teacher_layers)`: validation that depends on the teacher; returns a message
  naming the problem and the fix, or None.
- `apply_(model, ctx)`: change the student before training (slice it, attach masks or fake-quant,
  add a training hook to `ctx.hooks`).
- `describe(model)`: the keys it adds to `architecture.json`, so that a stored model can be rebuilt;
  `rebuild_(model, arch, kept_tokens)` gives an empty model those shapes again at load time.

Techniques run in registry order (`techniques/__init__.py`); each is a no-op when its fields are at
their defaults, so old recipes and stored models keep their meaning when a technique is added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    import torch

    from ..batches import Encoded
    from ..recipe import Recipe
    from ..distill import StepHook
    from ..inputs import EngineInputs
    from ..model import Classifier


@dataclass
class BuildContext:
    """What the techniques of one candidate share: the inputs, the recipe, its training rows."""

    inputs: EngineInputs
    recipe: Recipe
    train: Encoded  # the training rows this candidate uses
    logits: torch.Tensor  # the teacher's logits on those rows
    hooks: list[StepHook] = field(default_factory=list)  # run after every training step
    from_start: bool = False  # continuing from an earlier student or an elastic sub-network, not the teacher


class Technique:
    """Base class: every hook is a no-op, so a technique overrides only what it does."""

    name: ClassVar[str]
    Fields: ClassVar[type[BaseModel]]

    def check(self, recipe: Recipe, n_teacher_layers: int) -> str | None:
        return None

    def apply_(self, model: Classifier, ctx: BuildContext) -> None:
        return None

    def describe(self, model: Classifier) -> dict[str, Any]:
        return {}

    def rebuild_(self, model: Classifier, arch: dict[str, Any], kept_tokens: torch.Tensor | None) -> None:
        return None
