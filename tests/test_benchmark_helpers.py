"""The benchmark scripts' shared helper that builds a candidate once and reuses it (experiments/_common.py)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from autocompress import session
from autocompress.config import Experiment
from autocompress.recipe import Recipe
from autocompress.session import engine_inputs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from _common import cached_run


def test_cached_run_builds_once_then_reads_the_folder(tiny_experiment, tmp_path, monkeypatch):
    inputs, _teacher = engine_inputs(Experiment.from_file(tiny_experiment))
    recipe, folder = Recipe(layers=[0], bits=8, train_steps=2, batch_size=8), tmp_path / "row"
    steps: list[int] = []
    first = cached_run(inputs, recipe, folder, "row", hooks=[lambda step, *_: steps.append(step)])
    assert steps == [1, 2] and (folder / "metrics.json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("a built folder must be reused")

    monkeypatch.setattr(session, "run_recipe", no_build)
    again = cached_run(inputs, recipe, folder, "row")
    assert again == first and again.train_steps == 2


def _benchmark():
    import sst2_benchmark

    return sst2_benchmark


def test_the_peer_budget_asks_for_fewer_bytes_than_the_smallest_and_a_margin_under_the_fastest():
    got = _benchmark().budget_from_peers({"a": 300, "b": 200, "c": 250}, {"a": 4.0, "b": 9.0, "c": 5.0}, 0.9)
    assert (got["max_bytes"], got["max_latency_ms"]) == (199, 3.6)
    assert (got["smallest_peer"], got["fastest_peer"]) == ("b", "a")


def test_the_peer_budget_is_derived_once_then_read_back(tmp_path, monkeypatch):
    bench = _benchmark()
    timed: list[set] = []

    def fake_latency(runs, inputs, **kwargs):
        timed.append(set(runs))
        return {"peer: x": {1: 5.0}, "peer: y": {1: 4.0}}

    monkeypatch.setattr(bench, "interleaved_latency", fake_latency)
    rows = {"teacher": {"kind": "teacher", "run": print, "bytes": 1000},
            "peer: x": {"kind": "peer", "run": print, "bytes": 400},
            "peer: y": {"kind": "peer", "run": print, "bytes": 500},
            "peer: own process": {"kind": "peer", "bytes": 100}}  # timed elsewhere: not part of the budget
    args = SimpleNamespace(rounds=1, repeats=1, latency_margin=0.5)
    first = bench.peer_budget(tmp_path, rows, {1: {}}, args, threads=1)
    assert timed == [{"peer: x", "peer: y"}]
    assert (first["max_bytes"], first["max_latency_ms"]) == (399, 2.0)
    assert json.loads((tmp_path / "budget.json").read_text()) == first
    again = bench.peer_budget(tmp_path, rows, {1: {}}, SimpleNamespace(rounds=1, repeats=1, latency_margin=0.9), 1)
    assert again == first and len(timed) == 1  # a resumed search keeps the budget its trials were judged by


def test_the_pick_is_confirmed_side_by_side_among_the_trials_within_budget(monkeypatch):
    bench = _benchmark()
    ms = {"peer: fast": 4.0, "peer: slow": 9.0, "trial 1": 3.5, "trial 2": 3.9, "trial 3": 2.0, "trial 4": 1.0}
    timed: list[set] = []

    def fake_latency(runs, inputs, **kwargs):
        timed.append(set(runs))
        return {n: {1: ms[n]} for n in runs}

    monkeypatch.setattr(bench, "interleaved_latency", fake_latency)

    def trial(number, validation, feasible):
        return {"kind": "pareto", "trial": number, "run": print, "bytes": 10, "validation": validation,
                "searched": SimpleNamespace(feasible=feasible)}

    rows = {"teacher": {"kind": "teacher", "run": print, "bytes": 100},
            "peer: fast": {"kind": "peer", "run": print, "bytes": 50},
            "peer: slow": {"kind": "peer", "run": print, "bytes": 40},
            "trial 1": trial(1, 0.90, True),   # 3.5 ms: under 0.9 x 4.0
            "trial 2": trial(2, 0.95, True),   # 3.9 ms: most accurate, but over 3.6 ms side by side
            "trial 3": trial(3, 0.85, True),
            "trial 4": trial(4, 0.99, False)}  # outside the search's budget: never a candidate
    got = bench.confirm_pick(rows, {1: {}}, SimpleNamespace(confirm_rounds=2, repeats=1, latency_margin=0.9), 1)
    assert timed == [{"peer: fast", "peer: slow", "trial 1", "trial 2", "trial 3"}]
    assert got["trial"] == 1 and got["fastest_peer"] == "peer: fast" and got["limit_ms"] == 0.9 * 4.0
    assert got["within"] == [1, 2, 3] and got["passed"] == [1, 3]
    ms["trial 1"] = ms["trial 3"] = 5.0
    none = bench.confirm_pick(rows, {1: {}}, SimpleNamespace(confirm_rounds=2, repeats=1, latency_margin=0.9), 1)
    assert none["trial"] is None and none["passed"] == []
