"""Honest selection: the search reads validation rows only, ranks by the task's metric, and never
picks a candidate no better than predicting the majority class."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest

import autocompress.search.study as study_mod
from autocompress.config import Experiment
from autocompress.engine.measure import task_metrics
from autocompress.search.budget import Budget
from autocompress.search.report import build_report
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings, prepare_search, run_trials
from autocompress.session import engine_inputs
from autocompress.testing import make_teacher_dir, write_experiment, write_task

SPACE = parse_space({"depth": {"low": 1, "high": 3}, "bits": {"choices": [32, 8]},
                     "train_steps": {"low": 2, "high": 4}, "fixed": {"batch_size": 16, "lr": 1e-3}}, "s")


def _run(root: Path, trials: int, budget: Budget = Budget(), **task) -> optuna.Study:
    exp = Experiment.from_file(write_experiment(root, make_teacher_dir(root / "teacher"),
                                                write_task(root / "data", **task.pop("files", {})), task=task))
    settings = SearchSettings(baselines="none", memory=False, study="s", space=SPACE, trials=trials, budget=budget,
                              storage=f"sqlite:///{root / 'optuna.db'}", out_dir=root / "out")
    search = prepare_search(exp, settings)
    run_trials(search)
    return search.study


def test_the_search_never_reads_a_test_label(tmp_path):
    """Flipping every label of the test file leaves every recorded validation score (and so every
    choice) unchanged; only the reported test scores move."""
    first = _run(tmp_path / "a", trials=4)
    flipped = tmp_path / "b" / "data"
    paths = write_task(flipped)
    rows = paths["dev"].read_text().splitlines()
    paths["dev"].write_text("\n".join([rows[0]] + [f"{r.split(chr(9))[0]}\t{1 - int(r.split(chr(9))[1])}"
                                                    for r in rows[1:]]) + "\n")
    exp = Experiment.from_file(write_experiment(tmp_path / "b", make_teacher_dir(tmp_path / "b" / "teacher"),
                                                paths))
    settings = SearchSettings(baselines="none", memory=False, study="s", space=SPACE, trials=4, storage=f"sqlite:///{tmp_path / 'b' / 'optuna.db'}",
                              out_dir=tmp_path / "b" / "out")
    search = prepare_search(exp, settings, prepared=engine_inputs(exp))
    run_trials(search)
    second = search.study

    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert [t.values[0] for t in first.trials] == [t.values[0] for t in second.trials]
    for a, b in zip(first.trials, second.trials):
        assert a.user_attrs["metrics"]["accuracy"] == b.user_attrs["metrics"]["accuracy"]
        assert a.user_attrs["metrics"]["test_accuracy"] == pytest.approx(1 - b.user_attrs["metrics"]["test_accuracy"])
    assert first.user_attrs["teacher"]["score"] == second.user_attrs["teacher"]["score"]
    assert first.user_attrs["teacher"]["test_score"] == pytest.approx(1 - second.user_attrs["teacher"]["test_score"])


def _scored_as(predictions: dict[int, str]):
    """run_recipe as it is, then the trial's scores replaced by those of a chosen prediction on the real
    validation labels: "majority" (one class for every row), "balanced" (every negative right, half
    the positives wrong: less accurate than the majority, but correlated) or "teacher" (as measured)."""
    real = study_mod.run_recipe

    def run(inputs, recipe, folder, hooks=()):
        res = real(inputs, recipe, folder, hooks=hooks)
        kind = predictions.get(int(Path(folder).name.split("-")[1]), "teacher") if "trial-" in str(folder) else None
        if kind in ("majority", "balanced"):
            labels = inputs.data.validation.labels
            pred = np.ones_like(labels)
            if kind == "balanced":
                pred = labels.copy()
                positives = np.flatnonzero(labels == 1)
                pred[positives[: len(positives) // 2]] = 0
            scores = task_metrics(np.eye(2, dtype=np.float32)[pred], labels)
            res.metrics = replace(res.metrics, validation=scores).with_teacher(inputs.teacher_score)
        return res

    return run


@pytest.mark.parametrize("metric", ["accuracy", "mcc"])
def test_trials_are_ranked_by_the_task_metric(tmp_path, monkeypatch, metric):
    """On an imbalanced task, trial 0 ("majority": accuracy 0.76, MCC 0) and trial 1 ("balanced": less
    accurate, MCC well above 0) swap places between accuracy and MCC; trial 2 is the real teacher in
    int8, scored as measured. Both made-up trials are no better than the majority class in accuracy;
    in MCC only the constant one is."""
    monkeypatch.setattr(study_mod, "run_recipe", _scored_as({0: "majority", 1: "balanced"}))
    study = _run(tmp_path, trials=3, metric=metric, files={"positive_share": 0.8, "n_train": 200})
    by = {t.number: t for t in study.trials}
    for t in study.trials:
        assert t.values[0] == t.user_attrs["metrics"][metric]
    m0, m1 = by[0].user_attrs["metrics"], by[1].user_attrs["metrics"]
    assert m0["accuracy"] > m1["accuracy"] and m0["mcc"] < m1["mcc"]  # the two metrics disagree
    assert (by[0].values[0] > by[1].values[0]) == (metric == "accuracy")
    rep = build_report(study, remeasure=False)
    assert {p.key for p in rep.degenerate} == ({0, 1} if metric == "accuracy" else {0})
    assert rep.best.key == 2 and rep.teacher.metric == metric


def test_a_constant_prediction_is_degenerate_outside_the_budget_and_neither_pick_nor_knee(tmp_path, monkeypatch):
    monkeypatch.setattr(study_mod, "run_recipe", _scored_as({1: "majority"}))
    study = _run(tmp_path, trials=3, budget=Budget(min_retention=0.5), metric="accuracy",
                 files={"positive_share": 0.8, "n_train": 200})
    one = study.trials[1]
    assert one.user_attrs["degenerate"] is True
    assert one.constraints["above_majority"] > 0  # outside the budget, though it keeps > 50 % of the teacher
    assert one.constraints["score"] < 0
    rep = build_report(study, remeasure=False)
    assert rep.best.key != 1 and rep.knee.key != 1 and 1 not in [p.key for p in rep.front]
    assert all(not t.user_attrs["degenerate"] for t in study.trials if t.number != 1)
