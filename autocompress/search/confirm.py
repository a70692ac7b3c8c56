"""The pick confirmed side by side, and whether it beats the baselines.

Each trial timed itself at its own moment; on a shared machine the speed drifts between trials, and
between a trial and the baselines measured before the search. So a report times the teacher, the
baselines and the front side by side (interleaved rounds, order rotating every round) and judges the
latency budget on those numbers: the recommended pick is the highest validation score among the front
trials within every other limit of the budget whose side-by-side latency is within its latency limit
(for a budget derived from the baselines: at most the margin times the fastest baseline in the same rounds,
since the baselines are timed there too; the ratio derived before the search came from another moment).
Then it checks, on validation rows (what chooses) and on test rows (only reported), whether that pick
dominates each baseline: no worse score, no more bytes, no slower at batch 1, better in one of them.
Pure functions of measured numbers: no timing happens here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from .budget import Budget
from .pareto import Point, dominates

LATENCY_LIMITS = ("latency", "latency_ratio")  # the constraints side-by-side timing judges again


@dataclass(frozen=True)
class Rival:
    """A baseline as the verdict sees it: scores, bytes, side-by-side batch-1 ms."""

    name: str
    label: str
    score: float  # validation
    test_score: float | None
    bytes: int
    latency_ms: float


def within_latency(ms: float, teacher_ms: float, budget: Budget, rival_limit_ms: float | None = None) -> bool:
    """True when side-by-side `ms` meets the budget's latency limits: the absolute one, and the ratio to the
    teacher, or, for a budget derived from the baselines, `rival_limit_ms` (the margin times the fastest
    baseline timed in the same rounds) in place of that ratio."""
    if budget.max_latency_ms is not None and ms > budget.max_latency_ms:
        return False
    if rival_limit_ms is not None:
        return ms <= rival_limit_ms
    return budget.max_latency_ratio is None or ms / teacher_ms <= budget.max_latency_ratio


def confirmed_within(front: Sequence[Point], other_limits_met: Mapping[int, bool], latency: Mapping[int, float],
                     teacher_ms: float, budget: Budget, rival_limit_ms: float | None = None) -> frozenset[int]:
    """The `front` points within every limit but latency (`other_limits_met`) whose side-by-side batch-1
    `latency` meets the latency limits: the trials within budget on the side-by-side times."""
    return frozenset(p.key for p in front if not p.degenerate and other_limits_met.get(p.key, False)
                     and within_latency(latency[p.key], teacher_ms, budget, rival_limit_ms))


def highest(front: Sequence[Point], within: Collection[int], latency: Mapping[int, float]) -> Point | None:
    """The highest validation score among the `front` points in `within` (ties: fewer bytes, then faster)."""
    ok = [p for p in front if p.key in within]
    return min(ok, key=lambda p: (-p.score, p.bytes, latency[p.key])) if ok else None


def confirmed_pick(front: Sequence[Point], other_limits_met: Mapping[int, bool], latency: Mapping[int, float],
                   teacher_ms: float, budget: Budget, rival_limit_ms: float | None = None) -> Point | None:
    """The highest validation score among the `confirmed_within` points."""
    within = confirmed_within(front, other_limits_met, latency, teacher_ms, budget, rival_limit_ms)
    return highest(front, within, latency)


def beats(score: float, nbytes: float, ms: float, rival: Rival, rival_score: float | None) -> bool:
    """True when (score, bytes, ms) dominates the rival's (rival_score, bytes, ms)."""
    if rival_score is None:
        return False
    return dominates(Point(0, score, nbytes, ms), Point(1, rival_score, rival.bytes, rival.latency_ms))


def shortfall(score: float, nbytes: float, ms: float, rival: Rival) -> float:
    """How far (score, bytes, ms) is from dominating the rival on validation: the largest relative gap
    on any axis (0 when no worse on all three)."""
    return max(0.0, (rival.score - score) / abs(rival.score) if rival.score else rival.score - score,
               nbytes / rival.bytes - 1, ms / rival.latency_ms - 1)


@dataclass(frozen=True)
class Verdict:
    """The pick against the baselines, on validation and on test, and the closest front trial to the best
    baseline when none dominates it."""

    pick: int | None
    beaten: tuple[str, ...]  # baselines the pick dominates on validation score, bytes and side-by-side latency
    beaten_test: tuple[str, ...]  # ... on test score instead
    rivals: tuple[str, ...]  # every baseline's name
    best_rival: str | None  # the baseline with the highest validation score
    best_beaten_by: tuple[int, ...]  # front trials that dominate it on validation
    closest: int | None  # when none does: the front trial nearest to dominating it
    # without a pick: the best front trial that dominates the best baseline, and every baseline it dominates
    outside: int | None = None
    outside_beaten: tuple[str, ...] = ()
    outside_beaten_test: tuple[str, ...] = ()
    # with a pick that does not dominate the best baseline: the best front trial within budget that does
    instead: int | None = None
    instead_beaten: tuple[str, ...] = ()
    instead_beaten_test: tuple[str, ...] = ()

    @property
    def dominates_all(self) -> bool:
        return bool(self.rivals) and len(self.beaten) == len(self.rivals)

    @property
    def dominates_all_on_test(self) -> bool:
        return bool(self.rivals) and len(self.beaten_test) == len(self.rivals)


def verdict(pick: Point | None, front: Sequence[Point], test_scores: Mapping[int, float | None],
            latency: Mapping[int, float], rivals: Sequence[Rival]) -> Verdict:
    names = tuple(r.name for r in rivals)
    if not rivals:
        return Verdict(pick.key if pick else None, (), (), (), None, (), None)
    best_rival = max(rivals, key=lambda r: (r.score, -r.bytes))
    def against(p: Point) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The rivals `p` dominates on validation, and on test."""
        ms, test = latency[p.key], test_scores.get(p.key)
        return (tuple(r.name for r in rivals if beats(p.score, p.bytes, ms, r, r.score)),
                tuple(r.name for r in rivals if test is not None and beats(test, p.bytes, ms, r, r.test_score)))

    beaten, beaten_test = against(pick) if pick is not None else ((), ())
    live = sorted((p for p in front if not p.degenerate), key=lambda p: (-p.score, p.bytes))
    by = tuple(p.key for p in live if beats(p.score, p.bytes, latency[p.key], best_rival, best_rival.score))
    closest = None
    if not by and live:
        closest = min(live, key=lambda p: (shortfall(p.score, p.bytes, latency[p.key], best_rival), -p.score)).key
    outside = by[0] if pick is None and by else None
    out_beaten, out_test = against(next(p for p in live if p.key == outside)) if outside is not None else ((), ())
    within = [k for k in by if next(p for p in live if p.key == k).feasible]
    instead = within[0] if pick is not None and pick.key not in by and within else None
    in_beaten, in_test = against(next(p for p in live if p.key == instead)) if instead is not None else ((), ())
    return Verdict(pick.key if pick else None, beaten, beaten_test, names, best_rival.name, by, closest, outside,
                   out_beaten, out_test, instead, in_beaten, in_test)
