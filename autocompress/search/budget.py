"""The deployment budget: limits that become Optuna constraints (<= 0 means within budget)."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.metrics import Metrics, score_at_retention
from ..engine.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    max_bytes: int | None = None
    max_latency_ms: float | None = None  # batch-1 latency on the target runtime
    min_score: float | None = None  # the task's metric on the validation rows
    min_retention: float | None = None  # fraction of the teacher's score
    # batch-1 latency as a fraction of the fp32 teacher's, both timed interleaved inside the trial
    max_latency_ratio: float | None = None
    # peak resident memory the model adds to a fresh process once loaded and run (`autocompress.memory`)
    max_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_bytes is not None and self.max_bytes <= 0:
            raise ConfigError("--max-size-mb must be above 0")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise ConfigError("--max-latency-ms must be above 0")
        if self.min_score is not None and not -1 <= self.min_score <= 1:
            raise ConfigError(f"--min-score {self.min_score} is impossible: accuracy and f1 lie in [0, 1], mcc in "
                              "[-1, 1]")
        if self.max_memory_bytes is not None and self.max_memory_bytes <= 0:
            raise ConfigError("--max-memory-mb must be above 0")
        if self.max_latency_ratio is not None and self.max_latency_ratio <= 0:
            raise ConfigError("--max-latency-ratio must be above 0")
        if self.min_retention is not None and not 0 <= self.min_retention <= 1:
            raise ConfigError(f"--min-retention {self.min_retention} is impossible: give a fraction in [0, 1]")

    def score_floor(self, teacher_score: float) -> float | None:
        """The lowest score within budget: the stricter of min_score and the score that keeps
        min_retention of `teacher_score` (the teacher's, on the validation rows candidates are scored on)."""
        floors = [f for f in (self.min_score,
                              None if self.min_retention is None
                              else score_at_retention(self.min_retention, teacher_score))
                  if f is not None]
        return max(floors) if floors else None

    def constraints(self, metrics: Metrics, teacher_score: float) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.max_bytes is not None:
            out["bytes"] = (metrics.bytes - self.max_bytes) / self.max_bytes
        if self.max_latency_ms is not None:
            out["latency"] = (metrics.latency_ms_b1 - self.max_latency_ms) / self.max_latency_ms
        if self.max_latency_ratio is not None:
            # a record without a ratio (measured before trials timed the teacher beside them) is outside
            ratio = metrics.latency_ratio_b1 if metrics.latency_ratio_b1 is not None else 2 * self.max_latency_ratio
            out["latency_ratio"] = (ratio - self.max_latency_ratio) / self.max_latency_ratio
        if self.max_memory_bytes is not None:
            peak = metrics.peak_resident_bytes if metrics.peak_resident_bytes is not None else 2 * self.max_memory_bytes
            out["memory"] = (peak - self.max_memory_bytes) / self.max_memory_bytes
        floor = self.score_floor(teacher_score)
        if floor is not None:
            out["score"] = floor - metrics.score
        return out

    def describe(self, metric: str = "score") -> str:
        parts = []
        if self.max_bytes is not None:
            parts.append(f"size <= {self.max_bytes / 1e6:g} MB")
        if self.max_latency_ms is not None:
            parts.append(f"batch-1 latency <= {self.max_latency_ms:g} ms")
        if self.max_latency_ratio is not None:
            parts.append(f"batch-1 latency <= {self.max_latency_ratio:.3g} x the fp32 teacher's (timed beside it)")
        if self.max_memory_bytes is not None:
            parts.append(f"peak resident memory <= {self.max_memory_bytes / 1e6:g} MB")
        if self.min_score is not None:
            parts.append(f"{metric} >= {self.min_score:g}")
        if self.min_retention is not None:
            parts.append(f"{metric} >= {self.min_retention:.0%} of the teacher's")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}
