"""Build one candidate: apply every technique of a Recipe to a copy of the teacher, then train it."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data import Encoded, infinite_batches, sample_indices
from ..recipe import Recipe
from .distill import StepHook, TrainSettings, kd_loss, train_
from .inputs import EngineInputs
from .model import Classifier
from .prune import GradualPruner
from .quantize import attach_fake_quant_, materialize_
from .structured import layer_shapes, prune_structured_, taylor_importance
from .student import select_layers
from .vocab import prune_vocab_, used_tokens


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
    if start is not None:
        model = copy.deepcopy(start)
        if recipe.layers is not None and len(recipe.layers) != len(model.encoder_layers):
            raise ValueError("a start model must already have the recipe's layers")
    else:
        model = select_layers(inputs.teacher, recipe.layers)
    train, logits = _train_split(inputs, recipe)

    if recipe.vocab_prune and model.kept_tokens is None:
        prune_vocab_(model, used_tokens(inputs.data.train.ids, inputs.special_ids + (inputs.unk_id,)), inputs.unk_id)

    tcfg = inputs.teacher.config
    heads = max(1, round(recipe.heads_keep * tcfg.num_attention_heads))
    neurons = max(1, round(recipe.ffn_keep * tcfg.intermediate_size))
    if any(h > heads or f > neurons for h, f in layer_shapes(model)):
        sample = itertools.islice(infinite_batches(train, recipe.batch_size, recipe.seed + 1), inputs.importance_batches)

        def loss_fn(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return kd_loss(out, logits[batch["index"]], batch["labels"], recipe.temperature, recipe.alpha)

        prune_structured_(model, heads, neurons, taylor_importance(model, sample, loss_fn))

    hooks = list(hooks)
    if recipe.prunes_weights:
        schedule = "oneshot" if recipe.train_steps == 0 or recipe.prune_threshold else recipe.prune_schedule
        pruner = GradualPruner(model, recipe.prune_ratio, recipe.prune_scope, schedule,
                               threshold=recipe.prune_threshold)
        pruner.start_()
        hooks.insert(0, pruner)
    if recipe.bits < 32 or recipe.emb_bits < 32:
        attach_fake_quant_(model, recipe.bits, recipe.emb_bits)

    settings = TrainSettings(steps=recipe.train_steps, lr=recipe.lr, temperature=recipe.temperature,
                             alpha=recipe.alpha, hidden_mse=recipe.hidden_mse)
    t0 = time.perf_counter()
    losses = train_(
        model, infinite_batches(train, recipe.batch_size, recipe.seed), settings,
        teacher_logits=logits, teacher=inputs.teacher if recipe.hidden_mse > 0 else None,
        layer_map=recipe.layers or range(len(model.encoder_layers)), hooks=hooks,
    )
    seconds = time.perf_counter() - t0
    materialize_(model)
    return Candidate(model.eval(), losses, seconds)
