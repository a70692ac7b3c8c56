"""Measurements: task metrics, bytes on disk, latency on the target runtime, sparsity."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from .batches import Encoded, TaskData


@torch.inference_mode()
def predict_logits(model: Callable, enc, batch_size: int = 64) -> np.ndarray:
    """Outputs for every row of an Encoded split, in row order (batches bucketed by length): `[rows, width]`,
    or, for a model whose outputs are per token (`[batch, seq, width]`), `[tokens, width]` in the layout of
    the split's `ids`.

    A torch module is run where its parameters are (a model being trained on a GPU is scored there)."""
    from .batches import bucketed_batches
    from .device import to_device

    on = torch.device("cpu")
    if isinstance(model, nn.Module):
        model.eval()
        first = next(model.parameters(), None)
        on = first.device if first is not None else on
    out: np.ndarray | None = None
    for batch in bucketed_batches(enc, batch_size, shuffle=False):
        x = to_device(batch, on)
        logits = model(x["input_ids"], x["attention_mask"], x["token_type_ids"])
        logits = np.asarray(logits.float().cpu() if isinstance(logits, torch.Tensor) else logits, dtype=np.float32)
        per_token = logits.ndim == 3
        if out is None:
            out = np.zeros((len(enc.ids) if per_token else len(enc), logits.shape[-1]), dtype=np.float32)
        if per_token:
            real = batch["attention_mask"].numpy().astype(bool)
            positions = np.concatenate([np.arange(enc.offsets[i], enc.offsets[i] + n)
                                        for i, n in zip(batch["index"].numpy(), real.sum(1))])
            out[positions] = logits[real]
        else:
            out[batch["index"].numpy()] = logits
    assert out is not None
    return out


def evaluation_rows(data: TaskData, eval_subset: int | None) -> Encoded:
    """The validation rows candidates (and the teacher they are compared with) are scored on: the
    first `eval_subset` rows, or all of them (an even number when the task scores rows in pairs)."""
    validation = data.validation
    if eval_subset is not None and eval_subset < len(validation):
        return validation.subset(np.arange(eval_subset - eval_subset % 2 if data.task.pairs_as_rows
                                           else eval_subset))
    return validation


def task_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and Matthews correlation of argmax predictions (classification's scores)."""
    from .tasks.classification import classification_metrics

    return classification_metrics(logits, labels)


def latency_ms(
    run: Callable[[], object], *, warmup: int, repeats: int, threads: int
) -> float:
    """Median wall time of `run()` in milliseconds after warm-up, with a fixed torch thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                run()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                run()
                times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(before)
    return statistics.median(times)


def rotation(names: list[str], k: int) -> list[str]:
    """`names` in round `k`'s order: each round starts one place later, so over len(names) rounds every
    runner is timed first, second, ... once (no runner always follows the same one, or goes first)."""
    if not names:
        return []
    k %= len(names)
    return names[k:] + names[:k]


def interleaved_latency(
    runs: dict[str, Callable[..., object]], inputs: dict[int, dict], *, rounds: int, repeats: int, warmup: int,
    threads: int, per_round: dict[str, dict[int, list[float]]] | None = None,
) -> dict[str, dict[int, float]]:
    """Side-by-side latency: in each round every runner is timed on every input batch in turn, the
    order rotating by one place every round (`rotation`); the result is the median over rounds of each
    round's median (robust to a drifting machine). `per_round`, when given, receives every round's
    median (runner -> batch size -> list in round order), for paired, round-by-round comparisons."""
    samples: dict[str, dict[int, list[float]]] = {n: {bs: [] for bs in inputs} for n in runs}
    for k in range(rounds):
        for name in rotation(list(runs), k):
            run = runs[name]
            for bs, x in inputs.items():
                samples[name][bs].append(latency_ms(lambda: run(x["input_ids"], x["attention_mask"],
                                                    x["token_type_ids"]), warmup=warmup, repeats=repeats,
                                                    threads=threads))
    if per_round is not None:
        per_round.update({n: {bs: list(v) for bs, v in s.items()} for n, s in samples.items()})
    return {n: {bs: statistics.median(v) for bs, v in s.items()} for n, s in samples.items()}


def folder_bytes(path: Path, pattern: str = "*") -> int:
    """Bytes on disk of the files matching `pattern` under `path`."""
    return sum(f.stat().st_size for f in Path(path).rglob(pattern) if f.is_file())


def sparsity(model: nn.Module, names: Callable[[str], bool] | None = None) -> float:
    """Fraction of exactly-zero entries among weight matrices (optionally filtered by name)."""
    zeros = total = 0
    for name, p in model.named_parameters():
        if p.dim() < 2 or (names is not None and not names(name)):
            continue
        zeros += int((p == 0).sum())
        total += p.numel()
    return zeros / total if total else 0.0
