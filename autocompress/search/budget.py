"""The deployment budget: limits that become Optuna constraints (<= 0 means within budget)."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.metrics import Metrics, score_at_retention
from ..errors import ConfigError


@dataclass(frozen=True)
class Budget:
    max_bytes: int | None = None
    max_latency_ms: float | None = None  # batch-1 latency on the target runtime
    min_accuracy: float | None = None
    min_retention: float | None = None  # fraction of the teacher's accuracy

    def __post_init__(self) -> None:
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ConfigError("--max-size-mb must be above 0")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise ConfigError("--max-latency-ms must be above 0")
        if self.min_accuracy is not None and not 0 <= self.min_accuracy <= 1:
            raise ConfigError(f"--min-accuracy {self.min_accuracy} is impossible: give a fraction in [0, 1]")
        if self.min_retention is not None and not 0 <= self.min_retention <= 1:
            raise ConfigError(f"--min-retention {self.min_retention} is impossible: give a fraction in [0, 1]")

    def accuracy_floor(self, teacher_accuracy: float) -> float | None:
        """The lowest accuracy within budget: the stricter of min_accuracy and the accuracy that keeps
        min_retention of `teacher_accuracy` (the teacher's, on the rows candidates are scored on)."""
        floors = [f for f in (self.min_accuracy,
                              None if self.min_retention is None
                              else score_at_retention(self.min_retention, teacher_accuracy))
                  if f is not None]
        return max(floors) if floors else None

    def constraints(self, metrics: Metrics, teacher_accuracy: float) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.max_bytes is not None:
            out["bytes"] = (metrics.bytes - self.max_bytes) / self.max_bytes
        if self.max_latency_ms is not None:
            out["latency"] = (metrics.latency_ms_b1 - self.max_latency_ms) / self.max_latency_ms
        floor = self.accuracy_floor(teacher_accuracy)
        if floor is not None:
            out["accuracy"] = floor - metrics.accuracy
        return out

    def describe(self) -> str:
        parts = []
        if self.max_bytes is not None:
            parts.append(f"size <= {self.max_bytes / 1e6:g} MB")
        if self.max_latency_ms is not None:
            parts.append(f"batch-1 latency <= {self.max_latency_ms:g} ms")
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {self.min_accuracy:g}")
        if self.min_retention is not None:
            parts.append(f"accuracy >= {self.min_retention:.0%} of the teacher's")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}
