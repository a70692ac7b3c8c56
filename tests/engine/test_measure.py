"""Measurements on hand-computed cases: task metrics, latency bookkeeping, bytes on disk, sparsity."""

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from autocompress.engine.measure import (
    folder_bytes,
    interleaved_latency,
    latency_ms,
    rotation,
    sparsity,
    task_metrics,
)


def _logits(pred: list[int], k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[pred]


def _from_confusion(cm: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and one-hot logits realising a confusion matrix (rows: true class, columns: predicted)."""
    labels, pred = [], []
    for t, row in enumerate(cm):
        for p, n in enumerate(row):
            labels += [t] * n
            pred += [p] * n
    return _logits(pred, len(cm)), np.array(labels)


def test_binary_confusion_matrix():
    # TP 3, FN 1, FP 1, TN 3
    logits, labels = _from_confusion([[3, 1], [1, 3]])
    m = task_metrics(logits, labels)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)  # both classes: precision 3/4, recall 3/4
    assert m["mcc"] == pytest.approx((3 * 3 - 1 * 1) / math.sqrt(4 * 4 * 4 * 4))  # 0.5


def test_unbalanced_binary_mcc_matches_the_textbook_formula():
    tp, fn, fp, tn = 5, 2, 3, 10
    logits, labels = _from_confusion([[tn, fp], [fn, tp]])
    m = task_metrics(logits, labels)
    assert m["accuracy"] == pytest.approx(15 / 20)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m["mcc"] == pytest.approx(mcc)
    f1_pos = 2 * tp / (2 * tp + fp + fn)
    f1_neg = 2 * tn / (2 * tn + fn + fp)
    assert m["f1"] == pytest.approx((f1_pos + f1_neg) / 2)


def test_three_class_confusion_matrix():
    cm = [[2, 1, 0], [0, 3, 1], [1, 0, 2]]
    m = task_metrics(*_from_confusion(cm))
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["f1"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    # Gorodkin: (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)); p = t = (3, 4, 3)
    assert m["mcc"] == pytest.approx((7 * 10 - 34) / (100 - 34))


def test_constant_predictions_and_perfect_predictions():
    labels = np.array([0, 1, 0, 1])
    m = task_metrics(_logits([0, 0, 0, 0], 2), labels)
    assert (m["accuracy"], m["mcc"]) == (0.5, 0.0)  # no correlation is defined: 0
    assert m["f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    m = task_metrics(_logits([0, 1, 0, 1], 2), labels)
    assert m == {"accuracy": 1.0, "f1": 1.0, "mcc": 1.0}


def test_unpredicted_columns_count_as_classes():
    # three logit columns, only classes 0 and 1 occur: class 2 has F1 0 and lowers the macro mean
    m = task_metrics(_logits([0, 1, 1, 0], 3), np.array([0, 1, 1, 0]))
    assert m["accuracy"] == 1.0 and m["f1"] == pytest.approx(2 / 3)


class _Clock:
    """A fake perf_counter: each call of the timed function advances it by the next duration."""

    def __init__(self, durations_ms: list[float]):
        self.now = 0.0
        self.durations = list(durations_ms)
        self.calls = 0
        self.threads_seen: list[int] = []

    def perf_counter(self) -> float:
        return self.now

    def run(self) -> None:
        self.threads_seen.append(torch.get_num_threads())
        self.now += self.durations[self.calls] / 1000.0
        self.calls += 1


def test_latency_is_the_median_after_warmup(monkeypatch):
    clock = _Clock([100.0, 100.0, 5.0, 1.0, 9.0, 3.0, 7.0])  # two warm-up calls, then five timed
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    before = torch.get_num_threads()
    ms = latency_ms(clock.run, warmup=2, repeats=5, threads=1)
    assert clock.calls == 7
    assert ms == pytest.approx(5.0)  # the slow warm-up calls are not counted
    assert clock.threads_seen == [1] * 7 and torch.get_num_threads() == before


def test_latency_restores_threads_when_the_run_fails():
    before = torch.get_num_threads()

    def boom() -> None:
        raise RuntimeError("kernel failed")

    with pytest.raises(RuntimeError, match="kernel failed"):
        latency_ms(boom, warmup=0, repeats=3, threads=before + 1)
    assert torch.get_num_threads() == before


def test_interleaved_latency_times_every_runner_on_every_batch_each_round(monkeypatch):
    order: list[tuple[str, int]] = []
    clock = {"now": 0.0}
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])

    def runner(name: str, ms: float):
        def run(ids, mask, types):
            order.append((name, int(ids.shape[0])))
            clock["now"] += ms * ids.shape[0] / 1000.0
        return run

    inputs = {bs: {k: torch.zeros(bs, 4, dtype=torch.long) for k in ("input_ids", "attention_mask", "token_type_ids")}
              for bs in (1, 2)}
    rounds: dict = {}
    out = interleaved_latency({"a": runner("a", 2.0), "b": runner("b", 3.0)}, inputs, rounds=2, repeats=1,
                              warmup=0, threads=1, per_round=rounds)
    # the order rotates every round: a goes first in round 1, b in round 2
    assert order == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 1), ("b", 2), ("a", 1), ("a", 2)]
    assert out["a"][1] == pytest.approx(2.0) and out["a"][2] == pytest.approx(4.0)
    assert out["b"][1] == pytest.approx(3.0) and out["b"][2] == pytest.approx(6.0)
    assert rounds["a"][1] == pytest.approx([2.0, 2.0]) and rounds["b"][2] == pytest.approx([6.0, 6.0])


def test_rotation_puts_every_runner_first_once_over_as_many_rounds():
    names = ["teacher", "base-1", "base-2", "trial-3"]
    orders = [rotation(names, k) for k in range(len(names))]
    assert [o[0] for o in orders] == names
    assert all(sorted(o) == sorted(names) for o in orders)
    assert rotation(names, len(names)) == names and rotation([], 3) == []


def test_folder_bytes_counts_matching_files_recursively(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    (tmp_path / "sub" / "b.bin").write_bytes(b"x" * 250)
    (tmp_path / "sub" / "deeper" / "c.txt").write_bytes(b"x" * 7)
    assert folder_bytes(tmp_path) == 357
    assert folder_bytes(tmp_path, "*.bin") == 350
    assert folder_bytes(tmp_path / "sub", "*.txt") == 7
    assert folder_bytes(tmp_path / "empty-or-missing") == 0


def test_sparsity_counts_zeros_of_weight_matrices_only():
    net = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].weight[:2] = 0.0  # 8 of 20
        net[1].weight.fill_(0.0)  # 10 of 10
        net[0].bias.fill_(0.0)  # biases are ignored
    assert sparsity(net) == pytest.approx(18 / 30)
    assert sparsity(net, names=lambda n: n.startswith("0.")) == pytest.approx(8 / 20)
    assert sparsity(nn.Sequential()) == 0.0
