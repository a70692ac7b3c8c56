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
OPTIONAL = frozenset({"runtime_note", "final_loss", "teacher_score", "retention", "test", "metric", "elastic_id",
                      "reference_ms_b1", "latency_ratio_b1", "resident_bytes", "peak_resident_bytes",
                      "train_device"})


def _score_names() -> tuple[str, ...]:
    from .tasks import SCORE_NAMES

    return SCORE_NAMES


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

    # every score of the task (`tasks/`: accuracy, f1, mcc for a classifier) on the validation rows: what the
    # search chooses on; and on the test rows: only reported (None for records that predate test rows)
    validation: Mapping[str, float]
    test: Mapping[str, float] | None = None
    metric: str = "accuracy"  # the task's metric: one of the validation scores
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

    def __getattr__(self, name: str) -> float | None:
        """A score by its stored name: `m.accuracy` on the validation rows, `m.test_accuracy` on the test rows
        (None when the record has no test rows)."""
        d = self.__dict__
        if "validation" in d and name in d["validation"]:
            return d["validation"][name]
        if "validation" in d and name.startswith("test_") and name[5:] in d["validation"]:
            return None if d.get("test") is None else d["test"].get(name[5:])
        raise AttributeError(name)

    @property
    def score(self) -> float:
        """The task's metric on the validation rows: the objective."""
        return self.validation[self.metric]

    @property
    def test_score(self) -> float | None:
        """The task's metric on the test rows (None for records that predate test rows)."""
        return None if self.test is None else self.test.get(self.metric)

    def scores(self, split: str) -> dict[str, float | None]:
        """Every score of the task on "validation" or "test"."""
        if split == "validation":
            return dict(self.validation)
        return {k: None if self.test is None else self.test.get(k) for k in self.validation}

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
            elif f.name == "validation":
                out.update(value)
            elif f.name == "test":
                out.update({f"test_{k}": v for k, v in (value or {}).items()})
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
        validation = {k: data[k] for k in _score_names() if k in data}
        test = {k: data["test_" + k] for k in validation if "test_" + k in data}
        names = [f.name for f in fields(cls) if f.name not in ("latency_ms", "validation", "test")]
        missing = (["scores"] if not validation else []) + [n for n in names if n not in data and n not in OPTIONAL]
        if missing:
            raise KeyError(f"metrics lack {', '.join(missing)}")
        return cls(latency_ms=latency, validation=validation, test=test or None,
                   **{n: data[n] for n in names if n in data})
