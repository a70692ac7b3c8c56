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
# keys a stored record may lack: no training ran, no teacher was given, or the note was left out
OPTIONAL = frozenset({"runtime_note", "final_loss", "teacher_accuracy", "retention"})


def retention(score: float, reference_score: float) -> float:
    """The fraction of the reference's score that `score` keeps (1.0: as good as the teacher).

    Both scores must come from the same evaluation rows; the reference must be above 0.
    """
    return score / reference_score


def score_at_retention(fraction: float, reference_score: float) -> float:
    """The score that keeps `fraction` of the reference's: the inverse of `retention`."""
    return fraction * reference_score


@dataclass(frozen=True, kw_only=True)
class Metrics:
    """A candidate as measured: task scores on the evaluation rows, size, speed, shape, training.

    Fields are in the order of the stored keys; `latency_ms` maps batch size to median milliseconds.
    """

    accuracy: float
    f1: float
    mcc: float
    latency_ms: Mapping[int, float]
    bytes: int  # what the runtime loads (its own file, or the stored weights)
    weight_bytes: int  # the stored compressed weights
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
    teacher_accuracy: float | None = None  # the teacher's, on the same evaluation rows
    retention: float | None = None  # retention(accuracy, teacher_accuracy)

    @property
    def latency_ms_b1(self) -> float:
        return self.latency_ms[1]

    @property
    def latency_ms_b32(self) -> float:
        return self.latency_ms[32]

    def with_teacher(self, teacher_accuracy: float) -> Metrics:
        """This record with the teacher's accuracy (on the same rows) and the retention it implies."""
        return replace(self, teacher_accuracy=teacher_accuracy,
                       retention=retention(self.accuracy, teacher_accuracy))

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
