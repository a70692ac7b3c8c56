"""A tiny search as the MLflow UI shows it: the splits as dataset inputs, the search run's description,
the Pareto front's tags on the trial runs (moved by a later report) and the page `autocompress search` prints."""

import dataclasses
import shutil
from types import SimpleNamespace

import optuna
import pytest
from conftest import run_cli
from mlflow.tracking import MlflowClient

from autocompress.engine.errors import ConfigError
from autocompress.search.budget import Budget
from autocompress.search.publish import (
    FRONT_TAG,
    KNEE_TAG,
    PICK_TAG,
    ExportedTrial,
    log_export,
    publish_report,
    refresh_marks,
    report_note,
    run_marks,
    running_note,
    trial_runs,
)
from autocompress.search.report import build_report
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings
from autocompress.tracking import (
    CONTEXT_TAG,
    KIND,
    KIND_TAG,
    NOTE_TAG,
    MlflowTracker,
    open_store,
    ui_url,
)

SPACE = "depth: {low: 1, high: 3}\nbits: {choices: [32, 8]}\ntrain_steps: {low: 2, high: 3}\nfixed: {batch_size: 16}\n"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A sqlite MLflow store with its tables made: creating them takes seconds, copying the file does not."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowTracker(f"sqlite:///{path}", experiment=None)
    return path


def _tags(client, run: str) -> dict[str, str]:
    return client.get_run(run).data.tags


def _marks(client, runs: dict[int, str]) -> dict[int, tuple[str, str, str]]:
    return {k: tuple(_tags(client, r).get(t) for t in (FRONT_TAG, PICK_TAG, KNEE_TAG)) for k, r in runs.items()}


def test_a_search_as_the_mlflow_ui_shows_it(tiny_experiment, tmp_path, empty_store, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default Optuna store and MLflow's artifact root are in the working directory
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # absolute: MLflow keeps a store open per URI for the process
    notes: list[str] = []
    set_tags = MlflowTracker.set_tags

    def recording(self, run, tags):
        if NOTE_TAG in tags:
            notes.append(tags[NOTE_TAG])
        set_tags(self, run, tags)

    monkeypatch.setattr(MlflowTracker, "set_tags", recording)
    (tmp_path / "space.yaml").write_text(SPACE)
    code, out, err = run_cli(monkeypatch, capsys, "search", tiny_experiment, "--baselines", "none", "--no-memory", "--space", "space.yaml", "--trials", 3,
                             "--study", "demo", "--max-size-mb", 1, "--tracking-uri", uri)
    assert code == 0, err

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("autocompress-tiny")
    assert experiment.tags[KIND_TAG] == KIND
    assert f"  then open this search's runs: {ui_url(experiment.experiment_id)}" in out.splitlines()
    study = optuna.load_study(study_name="demo", storage="sqlite:///autocompress.db")
    parent, runs = study.user_attrs["mlflow_parent_run_id"], trial_runs(study)
    assert sorted(runs) == [0, 1, 2]

    # the splits: the same three dataset inputs on the search run and on every trial run
    seen = {}
    for run in (parent, *runs.values()):
        inputs = client.get_run(run).inputs.dataset_inputs
        seen[run] = {next(t.value for t in i.tags if t.key == CONTEXT_TAG): (i.dataset.name, i.dataset.digest,
                                                                              i.dataset.profile) for i in inputs}
    first = seen[parent]
    assert all(got == first for got in seen.values())
    assert {c: (name, profile) for c, (name, _, profile) in first.items()} == {
        "train": ("tiny-train", '{"num_rows": 120}'), "validation": ("tiny-validation", '{"num_rows": 40}'),
        "test": ("tiny-test", '{"num_rows": 48}')}
    assert len({digest for _, digest, _ in first.values()}) == 3

    # the description: "running" from the start, the report's summary at the end
    assert notes[0] == running_note(SearchSettings(baselines="none", memory=False, study="demo", space=parse_space({}, "s", "space"), trials=3,
                                                   budget=Budget(max_bytes=1_000_000)), "accuracy")
    report = build_report(study, remeasure=False)  # the picks do not depend on timing
    note = _tags(client, parent)[NOTE_TAG]
    assert note == notes[-1] and note.startswith("### autocompress search `demo`")
    assert "- status: reported after 3 trials (3 complete)" in note and "- budget: size <= 1 MB" in note
    best = report.best
    assert f"- recommended (highest validation score within budget): **trial {best.key}** (" in note
    assert f"validation accuracy {best.score:.4f}, test accuracy " in note and f"{best.bytes / 1e6:.2f} MB" in note
    assert f"- knee (balanced trade-off): **trial {report.knee.key}**" in note

    # the front's tags: one click filters the front, the pick and the knee
    expected = {k: tuple(tags[t] for t in (FRONT_TAG, PICK_TAG, KNEE_TAG)) for k, tags in run_marks(report).items()}
    assert _marks(client, runs) == expected
    assert {k for k, m in expected.items() if m[0] == "true"} == {p.key for p in report.front}
    assert [k for k, m in expected.items() if m[1] == "true"] == [best.key]
    assert client.search_runs([experiment.experiment_id], f"tags.{FRONT_TAG} = 'true'") != []

    # `autocompress report` puts the tags back where its report says, and says so
    client.set_tag(runs[best.key], PICK_TAG, "false")
    client.set_tag(parent, NOTE_TAG, "stale")
    code, out, err = run_cli(monkeypatch, capsys, "report", "--study", "demo", "--no-remeasure")
    assert code == 0, err
    assert f"report: MLflow runs re-tagged (pareto_front, recommended, knee) and described in '{uri}'" in err
    assert _marks(client, runs) == expected and _tags(client, parent)[NOTE_TAG] == report_note(report)

    # a later report with another front moves the tags: nothing stays marked that is no longer so
    other = next(p for p in report.points if p.key != best.key)
    moved = dataclasses.replace(report, front=[other], best=other, knee=None)
    publish_report(open_store(uri), parent, moved, runs)
    assert _marks(client, runs) == {k: ("true", "true", "false") if k == other.key else ("false", "false", "false")
                                    for k in runs}
    assert f"**trial {other.key}**" in _tags(client, parent)[NOTE_TAG]


def test_nothing_to_refresh_without_a_reachable_store(tmp_path):
    lines: list[str] = []
    untracked = SimpleNamespace(user_attrs={})
    assert refresh_marks(untracked, None, lines.append) is False and lines == []
    elsewhere = SimpleNamespace(user_attrs={"tracking_uri": f"sqlite:///{tmp_path / 'gone.db'}",
                                            "mlflow_parent_run_id": "abc"})
    assert refresh_marks(elsewhere, None, lines.append) is False
    assert lines == [(f"report: MLflow store 'sqlite:///{tmp_path / 'gone.db'}' is not here; its runs keep their "
                      "tags (run from the search's folder)")]
    assert not (tmp_path / "gone.db").exists()  # no empty store left behind


def test_the_running_note_states_budget_space_and_trials():
    settings = SearchSettings(baselines="none", memory=False, study="s", space=parse_space({}, "x", "quick"), trials=8, seed=3,
                              budget=Budget(max_latency_ms=5, min_retention=0.95))
    assert running_note(settings, "mcc") == (
        "### autocompress search `s`\n\n"
        "- status: **running**, until the study holds 8 finished trials\n"
        "- budget: batch-1 latency <= 5 ms, mcc >= 95% of the teacher's\n"
        "- space: `quick`; sampler tpe, seed 3\n"
        "- candidates are chosen on validation rows; test rows are only reported\n")


def test_an_export_is_logged_only_to_a_store_that_holds_its_run(empty_store, tmp_path):
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ConfigError, match=r"^trial 4's MLflow run 0123abcd is not in tracking store '.*mlflow.db'; "
                                          "pass the --tracking-uri the search logged to$"):
        log_export(ExportedTrial("s", 4, tmp_path, "0123abcd"), uri, register="m")
    assert MlflowClient(uri).search_registered_models() == []
