"""Baselines in the product: measured once per study, logged to MLflow, a budget derived from them, the pick
confirmed side by side and the verdict against them (no timing asserted: side-by-side numbers are fixed)."""

import json
from pathlib import Path

import pytest

from autocompress.config import Experiment
from autocompress.engine.errors import ConfigError
from autocompress.search import remeasure
from autocompress.search.baselines import ATTR, BUDGET_ATTR, KINDS, Baseline, beat_budget, merge_budget, select
from autocompress.search.budget import Budget
from autocompress.search.confirm import Rival, confirmed_pick, shortfall, verdict, within_latency
from autocompress.search.pareto import Point
from autocompress.search.report import TEACHER, baseline_key, build_report, write_report
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings, prepare_search, run_trials
from autocompress.session import engine_inputs
from autocompress.tracking import MlflowTracker

SPACE = {"depth": {"low": 1, "high": 2}, "bits": {"choices": [32, 8]}, "train_steps": {"low": 2, "high": 3},
         "fixed": {"batch_size": 16, "lr": 1e-3}}


def metrics(score, test, nbytes, ms, ratio):
    return {"accuracy": score, "f1": score, "mcc": 0.5, "test_accuracy": test, "test_f1": test, "test_mcc": 0.5,
            "metric": "accuracy", "latency_ms_b1": ms, "latency_ms_b32": 10 * ms, "bytes": nbytes,
            "weight_bytes": nbytes, "params": 1, "sparsity": 0.0, "layers": 2, "heads": 4, "ffn": 8, "vocab": 100,
            "bits": 8, "embedding_bits": 8, "runtime": "onnxruntime-int8", "fast_kernel": True, "seq_len": 16,
            "threads": 1, "train_seconds": 0.0, "train_steps": 0, "reference_ms_b1": ms / ratio,
            "latency_ratio_b1": ratio}


def baseline(name, score, test, nbytes, ms, ratio):
    return Baseline(name, name.upper(), "onnxruntime", 8, f"/models/{name}", metrics(score, test, nbytes, ms, ratio))


# ---- selection and the derived budget ------------------------------------------------------------


def test_select_names_all_none_and_unknown():
    assert select("all") == KINDS and select("none") == ()
    assert [k.name for k in select("openvino-int8, onnxruntime-int8")] == ["onnxruntime-int8", "openvino-int8"]
    with pytest.raises(ConfigError, match="unknown baseline tensorrt; use all, none or a comma-separated list"):
        select("onnxruntime-int8,tensorrt")


def test_torch_baseline_keeps_fp32_embeddings_like_quantize_dynamic():
    torch_kind = next(k for k in KINDS if k.name == "torch-int8")
    recipe = torch_kind.recipe()
    assert (recipe.bits, recipe.emb_bits, recipe.runtime, recipe.train_steps) == (8, 32, "torch", 0)


def test_beat_budget_is_smaller_than_the_smallest_faster_than_the_fastest_and_as_good_as_the_best():
    found = [baseline("a", 0.80, 0.79, 30_000_000, 4.0, 0.40), baseline("b", 0.84, 0.80, 20_000_000, 2.0, 0.20),
             baseline("c", 0.82, 0.81, 25_000_000, 3.0, 0.25)]
    got = beat_budget(found, 0.9)
    assert (got["smallest"], got["fastest"], got["best"]) == ("b", "b", "b")
    assert got["budget"] == {"max_bytes": 19_999_999, "max_latency_ratio": pytest.approx(0.18), "min_score": 0.84}
    # ratios timed side by side at one moment take the place of each baseline's own
    timed = beat_budget(found, 0.9, {"a": 0.10, "b": 0.20, "c": 0.25})
    assert timed["fastest"] == "a" and timed["budget"]["max_latency_ratio"] == pytest.approx(0.09)
    # the user's own limits win over the derived ones
    merged = merge_budget(Budget(max_bytes=5_000_000), Budget(**got["budget"]))
    assert merged.max_bytes == 5_000_000 and merged.min_score == 0.84
    with pytest.raises(ConfigError, match="--beat-baselines needs baselines"):
        beat_budget([], 0.9)
    with pytest.raises(ConfigError, match="--latency-margin 1.5"):
        beat_budget(found, 1.5)
    with pytest.raises(ConfigError, match="--latency-margin 1.5: give a fraction"):  # checked before anything runs
        SearchSettings(study="s", space=parse_space(SPACE, "space"), latency_margin=1.5)


def test_latency_ratio_constraint_reads_the_ratio_timed_inside_the_trial():
    from autocompress.engine.metrics import Metrics

    b = Budget(max_latency_ratio=0.5)
    inside = Metrics.from_dict(metrics(0.8, 0.8, 1000, 9.0, 0.4))  # slow in ms, but fast beside its reference
    outside = Metrics.from_dict(metrics(0.8, 0.8, 1000, 1.0, 0.6))
    assert b.constraints(inside, 0.9)["latency_ratio"] == pytest.approx(-0.2)
    assert b.constraints(outside, 0.9)["latency_ratio"] == pytest.approx(0.2)
    assert "0.5 x the fp32 teacher's" in b.describe()


# ---- confirmation and verdict (pure) ------------------------------------------------------------------


def test_the_pick_is_judged_on_side_by_side_latency_not_its_own():
    front = [Point(1, 0.90, 10, 1.0), Point(2, 0.88, 8, 1.0), Point(3, 0.85, 5, 1.0)]
    budget = Budget(max_latency_ratio=0.3)
    latency = {1: 4.0, 2: 2.5, 3: 2.0}  # teacher 10 ms: trial 1 is over 0.3 x side by side
    pick = confirmed_pick(front, {1: True, 2: True, 3: True}, latency, 10.0, budget)
    assert pick.key == 2
    # a trial outside another limit (bytes, score) stays out whatever its latency
    assert confirmed_pick(front, {1: True, 2: False, 3: True}, latency, 10.0, budget).key == 3
    assert confirmed_pick(front, {}, latency, 10.0, budget) is None
    assert within_latency(2.9, 10.0, Budget(max_latency_ms=3.0)) and not within_latency(3.1, 10.0, Budget(max_latency_ms=3.0))
    # a budget from the baselines is judged against them, timed in the same rounds: 3.4 ms is over 0.3 x the
    # teacher's 10 ms, but under the limit 0.9 x the fastest baseline's 4 ms there
    assert within_latency(3.4, 10.0, budget, rival_limit_ms=3.6) and not within_latency(3.7, 10.0, budget, 3.6)
    assert confirmed_pick(front, {1: True, 2: True, 3: True}, {1: 3.5, 2: 2.5, 3: 2.0}, 10.0, budget, 3.6).key == 1


def test_verdict_on_validation_and_on_test():
    rivals = [Rival("ort", "ORT", 0.86, 0.83, 24_000_000, 4.0), Rival("ov", "OV", 0.87, 0.84, 24_000_000, 2.0)]
    pick = Point(5, 0.87, 5_000_000, 1.5)
    v = verdict(pick, [pick], {5: 0.835}, {5: 1.5}, rivals)
    assert v.beaten == ("ort", "ov") and v.dominates_all
    assert v.beaten_test == ("ort",) and not v.dominates_all_on_test  # 0.835 < OV's 0.84 on test
    assert v.best_rival == "ov" and v.best_beaten_by == (5,) and v.closest is None and v.outside is None
    # no pick (outside the budget, e.g. short of a latency margin): the best trial that still beats the best
    # baseline is named, with every baseline it dominates
    v = verdict(None, [pick], {5: 0.835}, {5: 1.5}, rivals)
    assert (v.outside, v.outside_beaten, v.outside_beaten_test) == (5, ("ort", "ov"), ("ort",))


def test_a_front_trial_that_dominates_the_baselines_is_named_when_the_pick_does_not():
    # as in experiments/results/search-embeddings-stsb.md: the pick (bf16, big) is a hair more accurate; the
    # int8 trial beside it on the front dominates both baselines
    rivals = [Rival("ort", "ORT", 0.7941, 0.8651, 23_719_956, 4.19), Rival("ov", "OV", 0.7949, 0.8676, 24_270_311, 2.62)]
    pick, small = Point(0, 0.7971, 83_996_865, 5.99), Point(1, 0.7965, 22_362_026, 2.13)
    outside = Point(2, 0.7969, 20_000_000, 1.0, feasible=False)
    v = verdict(pick, [pick, small, outside], {0: 0.8704, 1: 0.8706, 2: 0.86}, {0: 5.99, 1: 2.13, 2: 1.0}, rivals)
    assert v.beaten == () and v.best_beaten_by == (2, 1)
    assert (v.instead, v.instead_beaten, v.instead_beaten_test) == (1, ("ort", "ov"), ("ort", "ov"))  # 2: over budget
    assert verdict(small, [pick, small], {}, {0: 5.99, 1: 2.13}, rivals).instead is None  # the pick itself does


def test_no_trial_dominates_the_best_baseline_names_the_closest():
    rivals = [Rival("ov", "OV", 0.87, 0.84, 24_000_000, 2.0)]
    front = [Point(1, 0.86, 5_000_000, 1.0), Point(2, 0.80, 3_000_000, 0.8), Point(3, 0.88, 30_000_000, 3.0)]
    v = verdict(None, front, {}, {1: 1.0, 2: 0.8, 3: 3.0}, rivals)
    assert v.best_beaten_by == () and v.closest == 1  # 1.1 % short on score; trial 3 is 50 % slower
    assert shortfall(0.86, 5_000_000, 1.0, rivals[0]) == pytest.approx(0.01 / 0.87)


# ---- a tiny search with baselines --------------------------------------------------------------------


@pytest.fixture
def baseline_search(tiny_experiment, tmp_path):
    exp = Experiment.from_file(tiny_experiment)
    prep = engine_inputs(exp)
    settings = SearchSettings(study="tiny-baselines", space=parse_space(SPACE, "space"), trials=3, seed=0,
                              storage=f"sqlite:///{tmp_path / 'optuna.db'}", out_dir=tmp_path / "out",
                              baselines="onnxruntime-int8,torch-int8", beat_baselines=True, confirm_rounds=2)
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t", artifact_root=tmp_path / "art")
    search = prepare_search(exp, settings, tracker, prepared=prep)
    return exp, prep, settings, tracker, search


def test_baselines_are_measured_once_logged_and_set_the_budget(baseline_search):
    exp, prep, settings, tracker, search = baseline_search
    stored = search.study.user_attrs[ATTR]
    assert [b["name"] for b in stored] == ["onnxruntime-int8", "torch-int8"]
    for b in stored:
        m = b["metrics"]
        assert m["runtime"] in ("onnxruntime-int8", "torch-int8-dynamic") and m["latency_ratio_b1"] > 0
        assert Path(b["folder"], "metrics.json").is_file() and m["test_accuracy"] is not None
    derived = search.study.user_attrs[BUDGET_ATTR]
    smallest = min(b["metrics"]["bytes"] for b in stored)
    assert derived["budget"]["max_bytes"] == smallest - 1
    # the latency limit: 0.9 x the fastest ratio, from the teacher and the baselines timed side by side
    assert set(derived["ratios"]) == {"onnxruntime-int8", "torch-int8"}
    assert derived["budget"]["max_latency_ratio"] == pytest.approx(0.9 * min(derived["ratios"].values()), abs=1e-4)
    assert search.settings.budget.max_bytes == smallest - 1
    assert search.study.user_attrs["budget"] == search.settings.budget.to_dict()
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.baseline = 'true'")
    assert sorted(r.info.run_name for r in runs) == ["baseline-onnxruntime-int8", "baseline-torch-int8"]
    assert all(r.data.tags["mlflow.parentRunId"] == search.parent for r in runs)
    # a second preparation (a resumed search, a worker) reads them back: nothing is rebuilt
    again = prepare_search(exp, settings, tracker, prepared=prep)
    assert again.study.user_attrs[ATTR] == stored and again.settings.budget == search.settings.budget
    assert len(tracker.client.search_runs([tracker.experiment_id], "tags.baseline = 'true'")) == 2


def test_report_times_baselines_beside_the_front_and_gives_a_verdict(baseline_search, monkeypatch, tmp_path):
    exp, prep, settings, tracker, search = baseline_search
    run_trials(search)
    calls = []

    def fake(folders, *, seq_len, batch_sizes, threads, rounds, **_kw):  # fixed numbers: no timing asserted
        calls.append((set(folders), rounds))
        return {k: {1: 10.0 if k == TEACHER else (3.0 if isinstance(k, str) else 1.0)} for k in folders}

    monkeypatch.setattr(remeasure, "side_by_side", fake)
    rep, md, _png = write_report(search.study, tmp_path / "report")
    keys, rounds = calls[0]
    assert rounds == 2 and TEACHER in keys
    assert {baseline_key("onnxruntime-int8"), baseline_key("torch-int8")} <= keys
    assert {p.key for p in rep.front} <= keys
    assert rep.verdict is not None and rep.verdict.rivals == ("onnxruntime-int8", "torch-int8")
    # the derived latency limit is judged on the baselines' side-by-side ms: 0.9 x 3 ms; every trial (1 ms) passes
    assert rep.latency_limit_ms == pytest.approx(2.7)
    assert all(rep.within(p) == (p.key in rep.confirmed_within) for p in rep.front)
    text = md.read_text()
    assert "## Baselines: the teacher on each runtime, no search" in text
    assert "| ONNX Runtime dynamic int8 | onnxruntime-int8 |" in text
    v = rep.verdict
    if rep.best is None:
        assert "- the pick against the baselines: no pick (no trial within budget)" in text
    else:
        assert f"trial {rep.best.key} dominates" in text and "on the test rows (only reported)" in text
    assert ("**no trial dominates the best baseline** (ONNX Runtime dynamic int8" in text
            or "**no trial dominates the best baseline** (torch dynamic int8" in text) == (not v.best_beaten_by)
    stored = search.study.user_attrs["recommended"]
    assert stored["trial"] == (rep.best.key if rep.best else None) and stored["confirm_rounds"] == 2
    got = json.loads((md.parent / "report.json").read_text())  # the same numbers, machine-readable
    assert got["recommended"] == (rep.best.key if rep.best else None) and got["confirm_rounds"] == 2
    assert [b["name"] for b in got["baselines"]] == ["onnxruntime-int8", "torch-int8"]
    assert all(b["latency_ms_b1"] == 3.0 for b in got["baselines"]) and got["teacher"]["latency_ms_b1_side_by_side"] == 10.0
    assert got["verdict"]["rivals"] == ["onnxruntime-int8", "torch-int8"]
    # memory in a fresh process, for the teacher, each baseline and each front trial (all folders are here)
    assert set(rep.memory) == keys
    assert all(m["resident"] > 0 and m["peak"] >= m["resident"] for m in rep.memory.values())
    assert "Resident / peak MB" in text
    # without remeasuring: the baselines' own numbers, no confirmation
    plain = build_report(search.study, remeasure=False)
    assert plain.confirm_rounds == 0 and plain.verdict is not None


def test_beat_baselines_refuses_a_study_that_already_has_trials(tiny_experiment, tmp_path):
    exp = Experiment.from_file(tiny_experiment)
    prep = engine_inputs(exp)
    base = dict(study="late", space=parse_space(SPACE, "space"), trials=1, seed=0,
                storage=f"sqlite:///{tmp_path / 'optuna.db'}", out_dir=tmp_path / "out", baselines="none")
    run_trials(prepare_search(exp, SearchSettings(**base), prepared=prep))
    with pytest.raises(ConfigError, match="already has trials judged by another budget"):
        prepare_search(exp, SearchSettings(**{**base, "baselines": "torch-int8", "beat_baselines": True}),
                       prepared=prep)


def test_memory_budget_reads_the_peak_measured_in_a_fresh_process():
    from dataclasses import replace

    from autocompress.engine.metrics import Metrics

    b = Budget(max_memory_bytes=200_000_000)
    m = Metrics.from_dict(metrics(0.8, 0.8, 1000, 1.0, 0.1))
    assert b.constraints(replace(m, peak_resident_bytes=150_000_000), 0.9)["memory"] == pytest.approx(-0.25)
    assert b.constraints(replace(m, peak_resident_bytes=300_000_000), 0.9)["memory"] == pytest.approx(0.5)
    assert b.constraints(m, 0.9)["memory"] > 0  # not measured: outside
    assert "peak resident memory <= 200 MB" in b.describe()
    with pytest.raises(ConfigError, match="--max-memory-mb must be above 0"):
        Budget(max_memory_bytes=0)
