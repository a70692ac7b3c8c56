"""One candidate, end to end: build the student a Recipe describes, train it, store it in its
compressed form, reload it from those bytes and measure it on its target runtime.

build (`build.py`: the technique registry in its order, then distillation) -> store -> reload ->
measure.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .artifact import RUNTIME_DIR, TASK_FILES, WEIGHTS, run_bytes
from .batches import Encoded, collate
from .recipe import Recipe
from .build import build_student
from .distill import StepHook
from .inputs import EngineInputs
from .measure import evaluation_rows, interleaved_latency, latency_ms, predict_logits
from .metrics import Metrics
from .model import Classifier, count_parameters
from .prune import sparsity_of
from .runtimes import get as get_runtime
from .runtimes import make_runtime
from .storage import load_model, save_model
from .structured import layer_shapes


@dataclass
class Result:
    metrics: Metrics
    model: Classifier  # as reloaded from the stored bytes
    folder: Path
    losses: list[float] = field(default_factory=list)


def latency_inputs(rows: Encoded, batch: int, seq_len: int) -> dict[str, torch.Tensor]:
    """A batch of real rows padded (or cut) to a fixed length: what latency is measured on."""
    idx = np.arange(batch) % len(rows)
    b = collate(rows, idx, pad_to=seq_len)
    return {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def calibration_batches(rows: Encoded, seq_len: int, batches: int = 8, size: int = 16,
                        seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """A seeded sample of training rows, padded (or cut) to `seq_len`, in batches: what a runtime
    that quantizes activations statically calibrates its ranges on (never validation or test rows)."""
    idx = np.random.default_rng(seed).permutation(len(rows))[: batches * size]
    return [{k: v for k, v in collate(rows, idx[i:i + size], pad_to=seq_len).items()
             if k in ("input_ids", "attention_mask", "token_type_ids")}
            for i in range(0, len(idx), size)]


def deployed_runtime(inputs: EngineInputs, recipe: Recipe) -> str:
    """The registry name of the runtime a candidate is measured on: its recipe's, else the experiment's."""
    return recipe.runtime or inputs.runtime


def measure(inputs: EngineInputs, model: Classifier, recipe: Recipe, folder: Path) -> Metrics:
    """Scores on the validation rows (and, only to report them, on the test rows), bytes, latency,
    parameters and sparsity of a stored compressed model.

    Training fields: the recipe's steps, 0 seconds; `compress` fills in what training took.
    """
    m = inputs.measure
    target = deployed_runtime(inputs, recipe)
    calibration = (calibration_batches(inputs.data.train, m.seq_len)
                   if get_runtime(target).needs_calibration(recipe.bits) else [])
    rt = make_runtime(model, recipe.bits, target, folder / RUNTIME_DIR, m.threads, calibration)
    data = inputs.data
    validation = evaluation_rows(data, m.eval_subset)
    before = torch.get_num_threads()
    torch.set_num_threads(m.threads)
    try:
        scores = data.scores(predict_logits(rt.run, validation), validation)
        tested = data.scores(predict_logits(rt.run, data.test), data.test)
    finally:
        torch.set_num_threads(before)
    latency: dict[int, float] = {}
    beside = beside_reference(inputs, rt.run) if 1 in m.batch_sizes else None
    if beside is not None:
        latency[1] = beside.ms
    for bs in m.batch_sizes:
        if bs in latency:
            continue
        x = latency_inputs(inputs.data.validation, bs, m.seq_len)
        latency[bs] = latency_ms(lambda: rt.run(x["input_ids"], x["attention_mask"], x["token_type_ids"]),
                                 warmup=m.warmup, repeats=m.repeats, threads=m.threads)
    weight_bytes = (folder / WEIGHTS).stat().st_size
    shapes = layer_shapes(model)
    return Metrics(
        validation=scores, test=tested, metric=inputs.metric, latency_ms=latency,
        bytes=run_bytes(folder, *(rt.files or (folder / WEIGHTS,))),
        weight_bytes=weight_bytes,
        params=count_parameters(model),
        sparsity=sparsity_of(model),
        layers=len(model.encoder_layers),
        heads=sum(h for h, _ in shapes),
        ffn=sum(f for _, f in shapes),
        vocab=int(model.config.vocab_size),
        bits=recipe.bits,
        embedding_bits=recipe.emb_bits,
        runtime=rt.name,
        fast_kernel=rt.fast_kernel,
        runtime_note=rt.note,
        seq_len=m.seq_len,
        threads=m.threads,
        train_seconds=0.0,
        train_steps=recipe.train_steps,
        reference_ms_b1=beside.reference_ms if beside else None,
        latency_ratio_b1=beside.ratio if beside else None,
    )


REFERENCE_ROUNDS = 3  # rounds timing a candidate beside the reference, inside its own trial


@dataclass(frozen=True)
class Beside:
    """A candidate's batch-1 latency timed interleaved with the reference (the fp32 teacher on torch)."""

    ms: float  # the candidate's median over rounds
    reference_ms: float  # the reference's, in the same rounds
    ratio: float  # median over rounds of candidate / reference: comparable between trials timed at other moments


def beside_reference(inputs: EngineInputs, run, rounds: int = REFERENCE_ROUNDS) -> Beside:
    """Time `run` and the fp32 teacher (torch eager) at batch 1 in `rounds` interleaved rounds of rotating
    order. Trials are timed at different moments on a machine whose speed drifts; the ratio to a reference
    timed in the same rounds is what compares across them."""
    m = inputs.measure
    x = latency_inputs(inputs.data.validation, 1, m.seq_len)
    teacher = inputs.teacher.eval()
    per_round: dict[str, dict[int, list[float]]] = {}
    got = interleaved_latency({"candidate": run, "reference": teacher}, {1: x}, rounds=rounds, repeats=m.repeats,
                              warmup=m.warmup, threads=m.threads, per_round=per_round)
    ratios = [c / r for c, r in zip(per_round["candidate"][1], per_round["reference"][1], strict=True)]
    return Beside(got["candidate"][1], got["reference"][1], float(np.median(ratios)))


def compress(
    inputs: EngineInputs, recipe: Recipe, folder: Path, start: Classifier | None = None,
    hooks: Sequence[StepHook] = (),
) -> Result:
    """Build, store in `folder`, reload from the stored bytes and measure one candidate."""
    cand = build_student(inputs, recipe, start, hooks)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(cand.model, folder, recipe.bits, recipe.emb_bits, runtime=deployed_runtime(inputs, recipe))
    for name in TASK_FILES:  # what running it needs besides the model, and what its bytes count
        src = inputs.task_files / name
        if src.is_dir():
            shutil.copytree(src, folder / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, folder / name)
    reloaded = load_model(folder)
    metrics = replace(measure(inputs, reloaded, recipe, folder), train_seconds=cand.train_seconds,
                      final_loss=float(np.mean(cand.losses[-20:])) if cand.losses else None,
                      elastic_id=cand.elastic_id, train_device=cand.train_device)
    return Result(metrics, reloaded, folder, cand.losses)
