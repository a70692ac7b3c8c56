import itertools
import random

import pytest

from autocompress.search.pareto import Point, best, dominates, front, hypervolume, knee


def test_front_is_non_dominated_and_complete():
    rng = random.Random(0)
    pts = [Point(i, rng.random(), rng.uniform(1, 100), rng.uniform(1, 10)) for i in range(60)]
    f = front(pts)
    assert f
    for a, b in itertools.permutations(f, 2):
        assert not dominates(a, b)
    for p in pts:
        if p not in f:
            assert any(dominates(q, p) for q in f)


def test_hypervolume_by_hand():
    ref = (1.0, 1.0, 1.0)
    assert hypervolume([(0.5, 0.5, 0.5)], ref) == pytest.approx(0.125)
    # two boxes overlapping in [0.5,1]x[0.5,1]x[0.5,1]: 0.25 + 0.25 - 0.125
    assert hypervolume([(0.5, 0.5, 0.0), (0.5, 0.0, 0.5)], ref) == pytest.approx(0.375)
    assert hypervolume([(0.0, 0.0, 0.0)], ref) == pytest.approx(1.0)
    assert hypervolume([(1.5, 0.0, 0.0)], ref) == 0.0  # outside the reference box
    # a dominated point adds nothing
    assert hypervolume([(0.2, 0.2, 0.2), (0.3, 0.3, 0.3)], ref) == pytest.approx(0.8**3)


def test_hypervolume_matches_monte_carlo():
    rng = random.Random(1)
    pts = [(rng.random(), rng.random(), rng.random()) for _ in range(8)]
    exact = hypervolume(pts, (1, 1, 1))
    n, hits = 40000, 0
    for _ in range(n):
        x = (rng.random(), rng.random(), rng.random())
        hits += any(all(p[i] <= x[i] for i in range(3)) for p in pts)
    assert exact == pytest.approx(hits / n, abs=0.01)


def test_best_respects_the_budget_and_knee_is_on_the_front():
    pts = [Point(0, 0.90, 90e6, 10.0, feasible=False), Point(1, 0.88, 10e6, 5.0), Point(2, 0.80, 2e6, 2.0),
           Point(3, 0.70, 1e6, 1.9), Point(4, 0.85, 20e6, 6.0)]
    assert best(pts).key == 1
    k = knee(pts, 90e6, 10.0)
    assert k in front([p for p in pts if p.feasible])
    assert best([Point(0, 0.9, 1, 1, feasible=False)]) is None
