"""Pareto analysis of (score up, bytes down, latency down): front, hypervolume, picks.

The score is the task's metric (accuracy, f1 or mcc) on the validation rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """One measured candidate. `feasible`: within every budget constraint. `degenerate`: no better
    than the majority class (never feasible)."""

    key: int  # trial number
    score: float
    bytes: float
    latency_ms: float
    feasible: bool = True
    degenerate: bool = False

    def losses(self, ref_bytes: float, ref_latency: float) -> tuple[float, float, float]:
        """Objectives as minimized, normalized by a reference model (the teacher)."""
        return (1.0 - self.score, self.bytes / ref_bytes, self.latency_ms / ref_latency)


def dominates(a: Point, b: Point) -> bool:
    no_worse = a.score >= b.score and a.bytes <= b.bytes and a.latency_ms <= b.latency_ms
    better = a.score > b.score or a.bytes < b.bytes or a.latency_ms < b.latency_ms
    return no_worse and better


def front(points: Sequence[Point]) -> list[Point]:
    """The non-dominated points, by score (highest first)."""
    out = [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
    return sorted(out, key=lambda p: (-p.score, p.bytes, p.latency_ms))


def _hv2(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by 2-D minimization points inside the reference box."""
    pts = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    area, best_y = 0.0, ref[1]
    for x, y in pts:  # x ascending: each point that lowers the staircase adds a strip
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def hypervolume(losses: Sequence[tuple[float, float, float]], ref: tuple[float, float, float]) -> float:
    """Volume dominated by 3-D minimization points and bounded by `ref` (exact, slicing on axis 0)."""
    pts = sorted(p for p in losses if all(v < r for v, r in zip(p, ref)))
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][0] if i + 1 < len(pts) else ref[0]
        if upper <= p[0]:
            continue
        slab = _hv2([(q[1], q[2]) for q in pts[: i + 1]], (ref[1], ref[2]))
        volume += (upper - p[0]) * slab
    return volume


REFERENCE = (1.0, 2.0, 2.0)  # score 0, twice the teacher's bytes and latency


def normalized_hypervolume(points: Sequence[Point], ref_bytes: float, ref_latency: float) -> float:
    """Hypervolume of the points' losses normalized by the teacher, reference point REFERENCE."""
    return hypervolume([p.losses(ref_bytes, ref_latency) for p in points], REFERENCE)


def best(points: Sequence[Point]) -> Point | None:
    """Highest score among feasible points (ties: fewer bytes, then lower latency)."""
    ok = [p for p in points if p.feasible]
    return min(ok, key=lambda p: (-p.score, p.bytes, p.latency_ms)) if ok else None


def knee(points: Sequence[Point], ref_bytes: float, ref_latency: float) -> Point | None:
    """The feasible front point closest to the ideal (best of each objective), after normalizing
    each objective to [0, 1] over the feasible front: a balanced trade-off."""
    f = front([p for p in points if p.feasible])
    if not f:
        return None
    losses = [p.losses(ref_bytes, ref_latency) for p in f]
    lo = [min(v[i] for v in losses) for i in range(3)]
    hi = [max(v[i] for v in losses) for i in range(3)]

    def dist(v: tuple[float, float, float]) -> float:
        return sum(((v[i] - lo[i]) / (hi[i] - lo[i]) if hi[i] > lo[i] else 0.0) ** 2 for i in range(3))

    return min(zip(f, losses), key=lambda pl: dist(pl[1]))[0]


def score_size_hypervolume(points: Sequence[Point], ref_bytes: float) -> float:
    """Area dominated in (1 - score, bytes / teacher), reference (1, 2): the two objectives
    that do not depend on how busy the machine was when latency was measured."""
    return _hv2([(1.0 - p.score, p.bytes / ref_bytes) for p in points], REFERENCE[:2])
