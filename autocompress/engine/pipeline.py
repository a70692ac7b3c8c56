"""One candidate, end to end: build the student a Recipe describes, train it, store it in its
compressed form, reload it from those bytes and measure it on its target runtime.

Order of techniques: keep teacher layers -> prune vocabulary -> remove heads / FFN neurons ->
attach weight-pruning masks -> attach fake-quant -> distill (masks and fake-quant stay applied,
gradual pruning on schedule) -> materialize -> store -> reload -> measure.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import MeasureConfig
from ..data import Encoded, TaskData, collate, infinite_batches, sample_indices
from ..recipe import Recipe
from .distill import StepHook, TrainSettings, kd_loss, train_
from .measure import latency_ms, predict_logits, task_metrics
from .model import Classifier, count_parameters
from .prune import GradualPruner, sparsity_of
from .quantize import attach_fake_quant_, materialize_
from .runtime import make_runtime
from .storage import WEIGHTS, load_model, save_model
from .structured import layer_shapes, prune_structured_, taylor_importance
from .student import select_layers
from .vocab import prune_vocab_, used_tokens


@dataclass(frozen=True)
class EngineInputs:
    """What every candidate shares: the task teacher, its cached logits, the data, how to measure."""

    teacher: Classifier
    data: TaskData
    teacher_logits: torch.Tensor  # [train rows, labels]
    special_ids: tuple[int, ...]
    unk_id: int
    measure: MeasureConfig = MeasureConfig()
    runtime: str = "torch"
    importance_batches: int = 8


@dataclass
class Candidate:
    model: Classifier  # materialized: plain parameters holding the compressed values
    losses: list[float]
    train_seconds: float


@dataclass
class Result:
    metrics: dict[str, float | int | str | bool]
    model: Classifier  # as reloaded from the stored bytes
    folder: Path
    losses: list[float] = field(default_factory=list)


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


def latency_inputs(dev: Encoded, batch: int, seq_len: int) -> dict[str, torch.Tensor]:
    """A batch of real dev rows padded (or cut) to a fixed length: what latency is measured on."""
    idx = np.arange(batch) % len(dev)
    b = collate(dev, idx, pad_to=seq_len)
    return {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def measure(inputs: EngineInputs, model: Classifier, recipe: Recipe, folder: Path) -> dict:
    """Accuracy (+F1, MCC), bytes, latency, parameters and sparsity of a stored compressed model."""
    m = inputs.measure
    rt = make_runtime(model, recipe.bits, inputs.runtime, folder / "runtime", m.threads)
    dev = inputs.data.dev
    if m.eval_subset is not None and m.eval_subset < len(dev):
        dev = dev.subset(np.arange(m.eval_subset))
    before = torch.get_num_threads()
    torch.set_num_threads(m.threads)
    try:
        metrics: dict = task_metrics(predict_logits(rt.run, dev), dev.labels)
    finally:
        torch.set_num_threads(before)
    for bs in m.batch_sizes:
        x = latency_inputs(inputs.data.dev, bs, m.seq_len)
        metrics[f"latency_ms_b{bs}"] = latency_ms(lambda: rt.run(x["input_ids"], x["attention_mask"],
                                                  x["token_type_ids"]), warmup=m.warmup, repeats=m.repeats,
                                                  threads=m.threads)
    weight_bytes = (folder / WEIGHTS).stat().st_size
    metrics.update(
        bytes=rt.artifact.stat().st_size if rt.artifact is not None else weight_bytes,
        weight_bytes=weight_bytes,
        params=count_parameters(model),
        sparsity=sparsity_of(model),
        layers=len(model.encoder_layers),
        heads=sum(h for h, _ in layer_shapes(model)),
        ffn=sum(f for _, f in layer_shapes(model)),
        vocab=int(model.config.vocab_size),
        bits=recipe.bits,
        embedding_bits=recipe.emb_bits,
        runtime=rt.name,
        fast_kernel=rt.fast_kernel,
        runtime_note=rt.note,
        seq_len=m.seq_len,
        threads=m.threads,
    )
    return metrics


def compress(
    inputs: EngineInputs, recipe: Recipe, folder: Path, start: Classifier | None = None,
    hooks: Sequence[StepHook] = (),
) -> Result:
    """Build, store in `folder`, reload from the stored bytes and measure one candidate."""
    cand = build_student(inputs, recipe, start, hooks)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(cand.model, folder, recipe.bits, recipe.emb_bits)
    reloaded = load_model(folder)
    metrics = measure(inputs, reloaded, recipe, folder)
    metrics["train_seconds"] = cand.train_seconds
    metrics["train_steps"] = recipe.train_steps
    if cand.losses:
        metrics["final_loss"] = float(np.mean(cand.losses[-20:]))
    return Result(metrics, reloaded, folder, cand.losses)
