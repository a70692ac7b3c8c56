"""Build one candidate: walk the technique registry over a copy of the teacher, then train it.

Every technique applies its part of the recipe in registry order (`techniques/__init__.py`):
layers -> vocabulary -> heads / FFN neurons -> low-rank factors -> weight masks -> fake-quant;
then the student is distilled with masks and fake-quant applied (gradual pruning on schedule)
and materialized into plain parameters holding the compressed values.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data import Encoded, infinite_batches, sample_indices
from ..recipe import Recipe
from .distill import StepHook, train_
from .inputs import EngineInputs
from .model import Classifier
from .quantize import materialize_
from .techniques import BuildContext, apply_all_
from .techniques.distillation import train_settings


@dataclass
class Candidate:
    model: Classifier  # materialized: plain parameters holding the compressed values
    losses: list[float]
    train_seconds: float


def _train_split(inputs: EngineInputs, recipe: Recipe) -> tuple[Encoded, torch.Tensor]:
    idx = sample_indices(len(inputs.data.train), recipe.train_subset, recipe.seed)
    if len(idx) == len(inputs.data.train):
        return inputs.data.train, inputs.teacher_logits
    return inputs.data.train.subset(idx), inputs.teacher_logits[torch.from_numpy(idx)]


def build_student(
    inputs: EngineInputs, recipe: Recipe, start: Classifier | None = None, hooks: Sequence[StepHook] = ()
) -> Candidate:
    """Apply every technique of `recipe`, starting from the teacher (or from `start`, a student)."""
    torch.manual_seed(recipe.seed)
    model = copy.deepcopy(start if start is not None else inputs.teacher)
    train, logits = _train_split(inputs, recipe)
    ctx = BuildContext(inputs, recipe, train, logits, hooks=list(hooks), from_start=start is not None)
    apply_all_(model, ctx)
    t0 = time.perf_counter()
    losses = train_(
        model, infinite_batches(train, recipe.batch_size, recipe.seed), train_settings(recipe),
        teacher_logits=logits, teacher=inputs.teacher if recipe.hidden_mse or recipe.attention_kl else None,
        layer_map=recipe.layers or range(len(model.encoder_layers)), hooks=ctx.hooks,
    )
    seconds = time.perf_counter() - t0
    materialize_(model)
    return Candidate(model.eval(), losses, seconds)
