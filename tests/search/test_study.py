"""A real (tiny) search: Optuna study, MLflow runs, Pareto report, resume, failures."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pytest

from autocompress.config import Experiment
from autocompress.engine.measure import predict_logits, task_metrics
from autocompress.engine.metrics import retention
from autocompress.search.budget import Budget
from autocompress.search.pareto import dominates, score_size_hypervolume
from autocompress.search.report import build_report, write_report
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings, prepare_search, run_trials
from autocompress.session import engine_inputs, read_metrics
from autocompress.testing import make_teacher_dir, write_experiment, write_task
from autocompress.tracking import MlflowTracker, NullTracker

SPACE = {
    "depth": {"low": 1, "high": 3},
    "bits": {"choices": [32, 8, 4]},
    "prune_ratio": {"low": 0.0, "high": 0.5, "step": 0.25},
    "train_steps": {"low": 2, "high": 4},
    "fixed": {"batch_size": 16, "lr": 1e-3},
}


@pytest.fixture
def prepared(tiny_experiment):
    exp = Experiment.from_file(tiny_experiment)
    return exp, engine_inputs(exp)


def _settings(tmp_path, **kw):
    base = dict(study="tiny", space=parse_space(SPACE, "test-space"), trials=4, sampler="tpe", seed=0,
                storage=f"sqlite:///{tmp_path / 'optuna.db'}", out_dir=tmp_path / "out")
    base.update(kw)
    return SearchSettings(**{"baselines": "none", "memory": False, **base})


def _search(exp, settings, prep, tracker=None):
    """Prepare the study (and parent run), run its trials in this process; the prepared search."""
    search = prepare_search(exp, settings, tracker, prepared=prep)
    run_trials(search)
    return search


def test_search_logs_one_nested_run_per_trial(prepared, tmp_path):
    exp, prep = prepared
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, experiment="t", artifact_root=tmp_path / "art")
    search = _search(exp, _settings(tmp_path), prep, tracker)
    study, ref, parent = search.study, search.ref, search.parent
    assert len(study.trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.metric_names == ["validation accuracy", "bytes", "batch-1 ms"]  # named for the dashboard
    # the enqueued starting points came first: the teacher's shape in fp32, then in int8
    assert study.trials[0].params["depth"] == 3 and study.trials[0].params["bits"] == 32
    assert study.trials[1].params["bits"] == 8

    client = tracker.client
    runs = client.search_runs([tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert len(runs) == 4
    by_trial = {int(r.data.params["trial"]): r for r in runs}
    for t in study.trials:
        r = by_trial[t.number]
        assert r.data.metrics["accuracy"] == pytest.approx(t.values[0])
        assert r.data.metrics["bytes"] == t.values[1]
        assert r.data.params["bits"] == str(t.user_attrs["recipe"]["bits"])
        assert r.info.status == "FINISHED" and r.data.tags["state"] == "COMPLETE"
        history = client.get_metric_history(r.info.run_id, "train_loss")
        assert len(history) >= 1  # per-step training curve
    parent_run = client.get_run(parent)
    assert parent_run.data.metrics["teacher_score"] == pytest.approx(ref.score)
    assert parent_run.data.metrics["teacher_test_score"] == pytest.approx(ref.test_score)
    assert 0 < ref.majority_score < ref.score  # the tiny teacher beats the majority class

    rep, md, png = write_report(study, tmp_path / "report", remeasure=False)
    assert png.stat().st_size > 5000 and "hypervolume" in md.read_text()
    kept = [p for p in rep.points if not p.degenerate]
    for a in rep.front:
        for b in kept:
            assert not dominates(b, a)
    # dominated points add no volume: the front's hypervolume is that of all the points it was made from
    t = rep.teacher
    assert rep.hypervolume == pytest.approx(score_size_hypervolume(kept, t.bytes))
    inside = any(p.score > 0 and p.bytes < 2 * t.bytes for p in kept)
    assert (rep.hypervolume > 0) == inside


def test_resume_adds_trials_instead_of_starting_over(prepared, tmp_path):
    exp, prep = prepared
    s2 = _settings(tmp_path, trials=2)
    study = _search(exp, s2, prep).study
    first = [(t.number, t.values) for t in study.trials]
    assert len(first) == 2 and all(v is not None for _, v in first)
    study = _search(exp, _settings(tmp_path, trials=4), prep).study
    assert len(study.trials) == 4
    assert [(t.number, t.values) for t in study.trials[:2]] == first
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_a_raising_trial_fails_and_the_search_goes_on(prepared, tmp_path, monkeypatch):
    exp, prep = prepared
    import autocompress.search.study as study_mod

    real = study_mod.run_recipe
    calls = {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("out of memory (simulated)")
        return real(*a, **kw)

    monkeypatch.setattr(study_mod, "run_recipe", flaky)
    study = _search(exp, _settings(tmp_path, trials=3), prep).study
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    failed = next(t for t in study.trials if t.state == optuna.trial.TrialState.FAIL)
    assert "out of memory" in failed.user_attrs["error"]


def test_budget_becomes_constraints(prepared, tmp_path):
    exp, prep = prepared
    s = _settings(tmp_path, trials=2, budget=Budget(max_bytes=10_000, min_score=0.01))
    search = _search(exp, s, prep)
    trials = search.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in trials:  # a tiny model is far above 10 kB, and far above 1 % accurate
        assert set(t.constraints) == {"bytes", "score", "above_majority"}
        assert t.constraints["bytes"] == pytest.approx((t.values[1] - 10_000) / 10_000) and t.constraints["bytes"] > 0
        assert t.constraints["score"] == pytest.approx(0.01 - t.values[0]) and t.constraints["score"] < 0
        majority = search.ref.majority_score
        assert t.constraints["above_majority"] == pytest.approx(majority - t.values[0], abs=1e-8)
        assert t.constraints["above_majority"] < 0
    assert build_report(search.study, remeasure=False).best is None  # nothing met the size budget


class _RecordingTracker(NullTracker):
    """Keeps what each trial run logged (its final metrics, not the training curve)."""

    def __init__(self) -> None:
        self.logged: dict[str, dict[str, float]] = {}

    def start_trial(self, parent, name, params):
        return name

    def log_metrics(self, run, metrics, step=None):
        if run is not None and step is None:
            self.logged.setdefault(run, {}).update(metrics)


def test_retention_is_against_the_teacher_on_the_evaluation_rows(tmp_path):
    """With eval_subset, metrics.json, the trial's MLflow run and its user attributes agree on retention:
    the score over the teacher's score on the same 20 validation rows (not on the whole split)."""
    exp = Experiment.from_file(write_experiment(tmp_path, make_teacher_dir(tmp_path / "teacher"),
                                                write_task(tmp_path / "data"), measure={"eval_subset": 20},
                                                task={"metric": "f1"}))
    inputs, teacher = engine_inputs(exp)
    rows = inputs.data.validation.subset(np.arange(20))
    on_rows = task_metrics(predict_logits(teacher.model, rows), rows.labels)["f1"]
    assert inputs.teacher_score == on_rows
    tracker = _RecordingTracker()
    search = _search(exp, _settings(tmp_path, trials=2), (inputs, teacher), tracker)
    assert search.ref.score == pytest.approx(on_rows)  # the reference: the teacher measured on those rows
    assert search.ref.validation_rows == 20
    for t in search.study.trials:
        written = read_metrics(Path(t.user_attrs["folder"]))
        assert written.metric == "f1" and t.values[0] == written.f1
        assert written.teacher_score == on_rows
        assert written.retention == retention(written.f1, on_rows)
        assert tracker.logged[f"trial-{t.number:04d}"]["retention"] == written.retention
        assert t.user_attrs["metrics"]["retention"] == written.retention


def test_hopeless_trials_are_pruned_half_way(prepared, tmp_path):
    exp, prep = prepared
    space = dict(SPACE, train_steps={"low": 20, "high": 24})
    s = _settings(tmp_path, space=parse_space(space, "s"), trials=3, budget=Budget(min_score=1.0),
                  early_stop_margin=-0.01)
    study = _search(exp, s, prep).study
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    # a negative margin puts the half-way threshold at 1.01, out of reach: trials that train stop half-way
    assert pruned, [t.state for t in study.trials]
    for t in pruned:
        assert t.user_attrs["pruned_reason"].startswith("validation accuracy ")
        assert t.user_attrs["pruned_reason"].endswith(" half-way is below 1.010")
        assert t.values is None and "metrics" not in t.user_attrs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_answers_http_on_loopback(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "autocompress.cli", "ui", "--tracking-uri",
                             f"sqlite:///{tmp_path / 'mlflow.db'}", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.time() + 90
        status = None
        while time.time() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    status = r.status
            except OSError:
                time.sleep(1)
        assert status == 200
    finally:  # the UI runs a server process of its own: stop the whole group
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
