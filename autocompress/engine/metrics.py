"""What one candidate measured, as one typed record, and the one definition of retention.

A record becomes a plain dict only where a dict is the interface: metrics.json, MLflow metrics
and Optuna user attributes. `Metrics.to_dict` gives the keys those have always had (one
`latency_ms_b<N>` key per measured batch size) and `Metrics.from_dict` reads them back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

_LATENCY_KEY = re.compile(r"latency_ms_b(\d+)")
# keys a stored record may lack: no training ran, no teacher was given, the note was left out, the
# candidate did not start from an elastic network, or the record predates test rows and task metrics
# (then its metric is accuracy) or elastic networks
OPTIONAL = frozenset({"runtime_note", "final_loss", "teacher_score", "retention", "test_accuracy", "test_f1",
                      "test_mcc", "metric", "elastic_id", "reference_ms_b1", "latency_ratio_b1",
                      "resident_bytes", "peak_resident_bytes", "train_device"})
SCORES = ("accuracy", "f1", "mcc")
"""The task metrics every candidate is scored in; an experiment's `task.metric` names one of them."""


def retention(score: float, reference_score: float) -> float:
    """The fraction of the reference's score that `score` keeps (1.0: as good as the teacher).

    The same definition for every metric: score / reference score, both on the same rows. It needs
    a reference above 0; for MCC, which is 0 for a constant prediction and negative for a worse
    than chance one, a candidate at or below 0 keeps 0 or less of the teacher.
    """
    if reference_score <= 0:
        raise ValueError(f"retention needs a reference score above 0, not {reference_score:g}")
    return score / reference_score


def score_at_retention(fraction: float, reference_score: float) -> float:
    """The score that keeps `fraction` of the reference's: the inverse of `retention`."""
    return fraction * reference_score


@dataclass(frozen=True, kw_only=True)
class Metrics:
    """A candidate as measured: task scores on the evaluation rows, size, speed, shape, training.

    Fields are in the order of the stored keys; `latency_ms` maps batch size to median milliseconds.
    """

    accuracy: float  # on the validation rows: what the search chooses on
    f1: float
    mcc: float
    test_accuracy: float | None = None  # on the test rows: only reported
    test_f1: float | None = None
    test_mcc: float | None = None
    metric: str = "accuracy"  # the task's metric, one of SCORES
    latency_ms: Mapping[int, float]
    bytes: int  # everything running it needs: the runtime's model file (or the weights), architecture, task, tokenizer
    weight_bytes: int  # the stored compressed weights file alone
    params: int
    sparsity: float
    layers: int
    heads: int
    ffn: int
    vocab: int
    bits: int
    embedding_bits: int
    runtime: str  # display name of the runtime measured on, e.g. torch-int8-dynamic
    fast_kernel: bool
    runtime_note: str | None = None
    seq_len: int
    threads: int
    train_seconds: float
    train_steps: int
    final_loss: float | None = None  # mean of the last training losses; None without training
    train_device: str | None = None  # where its training steps ran (cpu, cuda:0 bf16); None: it did not train
    teacher_score: float | None = None  # the teacher's `metric`, on the same validation rows
    retention: float | None = None  # retention(score, teacher_score)
    elastic_id: str | None = None  # the elastic network the candidate's sub-network was cut from; None: not
    # batch 1 timed interleaved with the fp32 teacher on torch inside the same trial: the teacher's median ms
    # there, and the median per-round ratio candidate / teacher (comparable between trials timed at other moments)
    reference_ms_b1: float | None = None
    latency_ratio_b1: float | None = None
    # what the model adds to a fresh process once loaded and run on a batch (`autocompress.memory`): measured
    # only when a memory budget asks for it
    resident_bytes: int | None = None
    peak_resident_bytes: int | None = None

    @property
    def latency_ms_b1(self) -> float:
        return self.latency_ms[1]

    @property
    def latency_ms_b32(self) -> float:
        return self.latency_ms[32]

    @property
    def score(self) -> float:
        """The task's metric on the validation rows: the objective."""
        return getattr(self, self.metric)

    @property
    def test_score(self) -> float | None:
        """The task's metric on the test rows (None for records that predate test rows)."""
        return getattr(self, "test_" + self.metric)

    def scores(self, split: str) -> dict[str, float | None]:
        """accuracy, f1 and mcc on "validation" or "test"."""
        prefix = "" if split == "validation" else "test_"
        return {k: getattr(self, prefix + k) for k in SCORES}

    def with_teacher(self, teacher_score: float) -> Metrics:
        """This record with the teacher's score (its `metric`, on the same validation rows) and the
        retention it implies (None when the teacher itself is at or below 0)."""
        return replace(self, teacher_score=teacher_score,
                       retention=retention(self.score, teacher_score) if teacher_score > 0 else None)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: one key per field, latency as latency_ms_b<N>, unset optional keys left out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "latency_ms":
                out.update({f"latency_ms_b{bs}": ms for bs, ms in value.items()})
            elif value is not None or f.name not in OPTIONAL:
                out[f.name] = value
        return out

    def numbers(self) -> dict[str, float]:
        """The numeric entries of `to_dict` as floats (flags and names left out): what MLflow logs."""
        return {k: float(v) for k, v in self.to_dict().items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metrics:
        """Read a stored record (metrics.json, an Optuna user attribute); keys it does not know are skipped."""
        latency: dict[int, float] = {}
        for key, value in data.items():
            hit = _LATENCY_KEY.fullmatch(key)
            if hit:
                latency[int(hit.group(1))] = value
        names = [f.name for f in fields(cls) if f.name != "latency_ms"]
        missing = [n for n in names if n not in data and n not in OPTIONAL]
        if missing:
            raise KeyError(f"metrics lack {', '.join(missing)}")
        return cls(latency_ms=latency, **{n: data[n] for n in names if n in data})
