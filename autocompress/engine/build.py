"""Build one candidate: walk the technique registry over a copy of the teacher, then train it.

Every technique applies its part of the recipe in registry order (`techniques/__init__.py`):
layers -> vocabulary -> heads / FFN neurons -> low-rank factors -> weight masks -> fake-quant;
then the student is distilled with masks and fake-quant applied (gradual pruning on schedule)
and materialized into plain parameters holding the compressed values. A recipe with
`elastic: true` starts from its sub-network of the task's elastic network instead of the teacher.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .batches import Encoded, infinite_batches, sample_indices
from .recipe import Recipe
from .device import label
from .distill import StepHook, train_
from .elastic import SubnetShape, extract
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
    elastic_id: str | None = None  # the elastic network it was cut from; None: copied from the teacher or `start`
    train_device: str | None = None  # where its steps ran (`device.label`: cpu, cuda:0 bf16); None: no training


def _train_split(inputs: EngineInputs, recipe: Recipe) -> tuple[Encoded, torch.Tensor]:
    idx = sample_indices(len(inputs.data.train), recipe.train_subset, recipe.seed)
    if len(idx) == len(inputs.data.train):
        return inputs.data.train, inputs.teacher_logits
    return inputs.data.train.subset(idx), inputs.teacher_logits[torch.from_numpy(idx)]


def start_model(inputs: EngineInputs, recipe: Recipe, start: Classifier | None = None) -> tuple[Classifier, str | None]:
    """A fresh model to build the candidate from, and the id of the elastic network it came from (or None).

    `start` when given (a copy); else, with `recipe.elastic`, the elastic network's sub-network of the
    recipe's depth (its layer count, or the teacher's), `heads_keep` and `ffn_keep`; else a copy of the teacher.
    """
    if start is not None:
        return copy.deepcopy(start), None
    if not recipe.elastic:
        return copy.deepcopy(inputs.teacher), None
    if inputs.elastic is None:
        raise ValueError("the recipe starts from the elastic network (elastic: true), but the engine inputs hold "
                         "none: give the experiment an elastic block and prepare it")
    depth = len(recipe.layers) if recipe.layers is not None else len(inputs.teacher.encoder_layers)
    return extract(inputs.elastic, SubnetShape(depth, recipe.heads_keep, recipe.ffn_keep)), inputs.elastic_id


def build_student(
    inputs: EngineInputs, recipe: Recipe, start: Classifier | None = None, hooks: Sequence[StepHook] = ()
) -> Candidate:
    """Apply every technique of `recipe`, starting from the teacher (or from `start`, a student, or from the
    elastic network's sub-network when `recipe.elastic`)."""
    torch.manual_seed(recipe.seed)
    model, elastic_id = start_model(inputs, recipe, start)
    train, logits = _train_split(inputs, recipe)
    from_start = start is not None or recipe.elastic  # its layers and units are already the recipe's
    ctx = BuildContext(inputs, recipe, train, logits, hooks=list(hooks), from_start=from_start)
    apply_all_(model, ctx)
    settings = train_settings(recipe, inputs.train_device, inputs.train_bf16)
    t0 = time.perf_counter()
    losses = train_(
        model, infinite_batches(train, recipe.batch_size, recipe.seed), settings,
        teacher_logits=logits, teacher=inputs.teacher if recipe.hidden_mse or recipe.attention_kl else None,
        layer_map=recipe.layers or range(len(model.encoder_layers)), hooks=ctx.hooks,
    )
    seconds = time.perf_counter() - t0
    materialize_(model)
    return Candidate(model.eval(), losses, seconds, elastic_id,
                     label(settings.device, settings.bf16) if losses else None)
