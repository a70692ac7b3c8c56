"""Trackers: MLflow against a sqlite store in tmp_path, the NullTracker, and open_tracker's choices and errors;
what the MLflow UI shows of a search (experiment kind, dataset inputs, pages) and the registry."""

import json
import os
import shutil

import pytest
from conftest import run_cli

from autocompress.config import Experiment
from autocompress.engine.errors import ConfigError
from autocompress.tracking import (
    CONTEXT_TAG,
    DEFAULT_TRACKING_URI,
    KIND,
    KIND_TAG,
    NOTE_TAG,
    MlflowTracker,
    NullTracker,
    SplitInput,
    open_store,
    open_tracker,
    rows_digest,
    search_url,
    split_inputs,
    store_exists,
    ui_pages,
    ui_root,
    ui_url,
)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A sqlite MLflow store with its tables made: creating them takes seconds, copying the file does not."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowTracker(f"sqlite:///{path}", experiment=None)
    return path


@pytest.fixture
def store(empty_store, tmp_path):
    """The URI of a fresh sqlite MLflow store in tmp_path."""
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def tracker(store, tmp_path):
    return MlflowTracker(store, experiment="t", artifact_root=tmp_path / "art")


def test_default_uri_is_a_sqlite_file_in_the_working_directory():
    assert DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"


def test_null_tracker_tracks_nothing(tmp_path):
    t = NullTracker()
    assert t.tracking_uri is None
    assert t.start_search("s", {"a": 1}, {}, None) is None
    assert t.start_trial(None, "trial-0000", {"bits": 8}) is None
    assert t.log_metrics(None, {"accuracy": 0.5}) is None
    assert t.set_tags(None, {"x": "y"}) is None
    assert t.log_datasets(None, [SplitInput("train", "tiny-train", "abc", 3, "train.tsv")]) is None
    assert t.log_artifacts(None, tmp_path) is None
    assert t.end(None) is None


def test_experiment_is_created_once_with_its_artifact_root(tmp_path, tracker):
    exp = tracker.client.get_experiment(tracker.experiment_id)
    assert exp.name == "t" and exp.artifact_location == (tmp_path / "art").resolve().as_uri()
    again = MlflowTracker(tracker.tracking_uri, experiment="t")
    assert again.experiment_id == tracker.experiment_id


def test_search_and_nested_trial_runs(tracker):
    parent = tracker.start_search("study-a", {"budget": {"max_bytes": 10}, "long": "x" * 600, "seed": 0},
                                  {"autocompress.study": "study-a"}, None)
    run = tracker.client.get_run(parent)
    assert run.info.run_name == "study-a" and run.info.status == "RUNNING"
    assert run.data.params == {"budget.max_bytes": "10", "long": "x" * 500, "seed": "0"}  # flattened, cut at 500
    assert run.data.tags["autocompress.kind"] == "search" and run.data.tags["autocompress.study"] == "study-a"

    trial = tracker.start_trial(parent, "trial-0003", {"bits": 8, "trial": 3})
    got = tracker.client.get_run(trial)
    assert got.data.tags["mlflow.parentRunId"] == parent and got.data.tags["autocompress.kind"] == "trial"
    assert got.data.params == {"bits": "8", "trial": "3"}

    tracker.log_metrics(trial, {"train_loss": 0.5}, step=10)
    tracker.log_metrics(trial, {"train_loss": 0.25}, step=20)
    tracker.log_metrics(trial, {"accuracy": 0.75})
    tracker.set_tags(trial, {"state": "COMPLETE", "feasible": True})
    tracker.end(trial, "FAILED")
    got = tracker.client.get_run(trial)
    history = tracker.client.get_metric_history(trial, "train_loss")
    assert [(m.step, m.value) for m in history] == [(10, 0.5), (20, 0.25)]
    assert got.data.metrics["accuracy"] == 0.75
    assert got.data.tags["state"] == "COMPLETE" and got.data.tags["feasible"] == "True"
    assert got.info.status == "FAILED"


def test_a_resumed_search_reopens_its_parent_run(tracker):
    parent = tracker.start_search("s", {}, {}, None)
    tracker.end(parent, "FINISHED")
    assert tracker.client.get_run(parent).info.status == "FINISHED"
    assert tracker.start_search("s", {}, {}, parent) == parent
    assert tracker.client.get_run(parent).info.status == "RUNNING"


def test_run_none_is_ignored(tracker):
    tracker.log_metrics(None, {"a": 1.0})
    tracker.set_tags(None, {"a": "b"})
    tracker.end(None)
    assert tracker.client.search_runs([tracker.experiment_id]) == []


def test_artifacts_and_registry(tmp_path, tracker):
    run = tracker.start_trial(None, "trial-0000", {})
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "card.md").write_text("hello")
    tracker.log_artifacts(run, folder, "export")
    assert [f.path for f in tracker.client.list_artifacts(run, "export")] == ["export/card.md"]
    assert tracker.register(run, "export", "tiny", {"autocompress.trial": "0"}) == "1"
    assert tracker.register(run, "export", "tiny") == "2"  # an existing model gets a new version
    first = tracker.client.get_model_version("tiny", "1")
    artifacts = tracker.client.get_run(run).info.artifact_uri
    assert first.run_id == run and first.source == f"{artifacts}/export" and first.status == "READY"
    assert first.tags == {"autocompress.trial": "0"}
    assert [m.name for m in tracker.client.search_registered_models()] == ["tiny"]  # what the Models page lists
    with pytest.raises(ConfigError, match=r"^--register 'a/b': the Model Registry refuses it \(.*'/'"):
        tracker.register(run, "export", "a/b")
    # a tracker without an experiment only uses runs that exist
    other = MlflowTracker(tracker.tracking_uri, experiment=None)
    assert not hasattr(other, "experiment_id")
    other.set_tags(run, {"seen": "yes"})
    assert tracker.client.get_run(run).data.tags["seen"] == "yes"


def test_open_tracker(store):
    uri = store
    assert isinstance(open_tracker(uri, True, "tiny"), NullTracker)  # --no-tracking
    assert isinstance(open_tracker(None, False, "tiny"), NullTracker)  # no URI known
    t = open_tracker(uri, False, "tiny")
    assert t.tracking_uri == uri
    assert t.client.get_experiment(t.experiment_id).name == "autocompress-tiny"


def test_open_tracker_on_an_unusable_store_is_one_line():
    with pytest.raises(ConfigError) as err:
        open_tracker("nosuch://x", False, "tiny")
    msg = str(err.value)
    assert msg.startswith("MLflow tracking store 'nosuch://x' cannot be used (")
    assert msg.endswith("); check --tracking-uri or pass --no-tracking") and "\n" not in msg


# ---- what the MLflow UI shows -----------------------------------------------------------------


def test_tag_names_are_the_ones_mlflow_reads():
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_RUN_NOTE

    assert NOTE_TAG == MLFLOW_RUN_NOTE and CONTEXT_TAG == MLFLOW_DATASET_CONTEXT
    # what MLflow's UI writes when a user declares an experiment one of model training (3.17's bundle)
    assert (KIND_TAG, KIND) == ("mlflow.experimentKind", "custom_model_development")


def test_a_new_experiment_declares_its_kind(tracker):
    assert tracker.client.get_experiment(tracker.experiment_id).tags[KIND_TAG] == KIND


def test_an_older_experiment_gets_the_kind_and_a_chosen_kind_stays(store, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    old = client.create_experiment("old", artifact_location=tmp_path.as_uri())
    chosen = client.create_experiment("chosen", artifact_location=tmp_path.as_uri(),
                                      tags={KIND_TAG: "genai_development"})
    MlflowTracker(store, experiment="old")
    MlflowTracker(store, experiment="chosen")
    assert client.get_experiment(old).tags[KIND_TAG] == KIND
    assert client.get_experiment(chosen).tags[KIND_TAG] == "genai_development"


SPLITS = (SplitInput("train", "tiny-train", "d1", 120, "/data/train.tsv"),
          SplitInput("validation", "tiny-validation", "d2", 40, "/data/train.tsv"),
          SplitInput("test", "tiny-test", "d3", 48, "nyu-mll/glue", "sst2", "validation"))


def _inputs(client, run: str) -> dict[str, object]:
    """context -> the run's dataset input of that context."""
    return {next(t.value for t in i.tags if t.key == CONTEXT_TAG): i.dataset
            for i in client.get_run(run).inputs.dataset_inputs}


def test_splits_are_logged_once_as_dataset_inputs(tracker):
    run = tracker.start_trial(None, "trial-0000", {})
    tracker.log_datasets(run, SPLITS)
    tracker.log_datasets(run, SPLITS)  # again (a resumed search): nothing new
    tracker.log_datasets(None, SPLITS)
    got = _inputs(tracker.client, run)
    assert len(tracker.client.get_run(run).inputs.dataset_inputs) == 3
    assert {c: (d.name, d.digest, json.loads(d.profile)) for c, d in got.items()} == {
        "train": ("tiny-train", "d1", {"num_rows": 120}), "validation": ("tiny-validation", "d2", {"num_rows": 40}),
        "test": ("tiny-test", "d3", {"num_rows": 48})}
    assert got["train"].source_type == "local" and json.loads(got["train"].source) == {"uri": "/data/train.tsv"}
    hub = json.loads(got["test"].source)
    assert got["test"].source_type == "hugging_face"
    assert (hub["path"], hub["config_name"], hub["split"]) == ("nyu-mll/glue", "sst2", "validation")


def _encoded(rows: int, seed: int):
    import numpy as np

    from autocompress.engine.batches import Encoded

    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(2, 6, rows))]).astype(np.int64)
    return Encoded(rng.integers(0, 50, offsets[-1]).astype(np.int32), np.zeros(offsets[-1], np.int8), offsets,
                   rng.integers(0, 2, rows).astype(np.int64))


def test_split_inputs_of_local_files_and_of_the_hub(tmp_path):
    from autocompress.engine.batches import TaskData

    data = TaskData(_encoded(12, 0), _encoded(4, 1), _encoded(5, 2), ("0", "1"), "fingerprint", "train-key")
    exp = Experiment(name="tiny", task={"train": "d/train.tsv", "dev": "d/dev.tsv"}, base_dir=str(tmp_path))
    splits = split_inputs(exp, data)
    assert [(s.context, s.name, s.rows) for s in splits] == [
        ("train", "tiny-train", 12), ("validation", "tiny-validation", 4), ("test", "tiny-test", 5)]
    assert [s.digest for s in splits] == [rows_digest(data.train), rows_digest(data.validation), rows_digest(data.test)]
    assert len({s.digest for s in splits}) == 3 and split_inputs(exp, data) == splits  # distinct, reproducible
    train, dev = str((tmp_path / "d" / "train.tsv").resolve()), str((tmp_path / "d" / "dev.tsv").resolve())
    assert [(s.source, s.hub_split) for s in splits] == [(train, None), (train, None), (dev, None)]  # held out of train
    own = exp.model_copy(update={"task": exp.task.model_copy(update={"validation": "d/val.tsv"})})
    assert split_inputs(own, data)[1].source == str((tmp_path / "d" / "val.tsv").resolve())

    hub = Experiment(name="tiny", task={"hub": {"path": "nyu-mll/glue", "name": "sst2"}}, base_dir=str(tmp_path))
    assert [(s.source, s.hub_config, s.hub_split) for s in split_inputs(hub, data)] == [
        ("nyu-mll/glue", "sst2", "train"), ("nyu-mll/glue", "sst2", "train"), ("nyu-mll/glue", "sst2", "validation")]

    changed = _encoded(4, 1)
    changed.labels[0] = 1 - changed.labels[0]
    assert rows_digest(changed) != rows_digest(data.validation)  # one label more or less is another split


def test_ui_addresses(tracker):
    assert ui_root() == "http://127.0.0.1:5000"
    # the runs table (or a run) in the UI's "Model training" mode: MLflow 3.17 opens an experiment on its GenAI
    # overview otherwise, whatever its kind tag (tests/test_browser.py follows the printed page in Chromium)
    assert ui_url("7") == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert ui_url("7", "abc", host="lab.lan", port=8080) == \
        "http://lab.lan:8080/#/experiments/7/runs/abc?workflowType=machine_learning"
    assert ui_root("0.0.0.0", 80) == "http://127.0.0.1:80" and ui_root("::", 80) == "http://[::1]:80"
    assert search_url(tracker) == ui_url(tracker.experiment_id) and search_url(NullTracker()) is None


def _two_experiments(store, tmp_path, monkeypatch):
    """autocompress-sst2 with studies s1 and s2, autocompress-rte with none, and one experiment not ours."""
    monkeypatch.chdir(tmp_path)  # the default artifact root is relative
    sst2 = open_tracker(store, False, "sst2")
    runs = {s: sst2.start_search(s, {}, {"autocompress.study": s}, None) for s in ("s2", "s1")}
    sst2.start_trial(runs["s1"], "trial-0000", {})  # a trial is no search
    rte = open_tracker(store, False, "rte")
    MlflowTracker(store, experiment="mine").start_search("s3", {}, {"autocompress.study": "s3"}, None)
    return sst2, rte, runs


def test_ui_pages_list_each_search(store, tmp_path, monkeypatch):
    sst2, rte, runs = _two_experiments(store, tmp_path, monkeypatch)
    pages = ui_pages(store, port=5055)
    assert [(p.label, p.url) for p in pages] == [
        ("autocompress-rte (studies: none)", ui_url(rte.experiment_id, port=5055)),
        ("autocompress-sst2 (studies: s1, s2)", ui_url(sst2.experiment_id, port=5055))]
    assert [(p.label, p.url) for p in ui_pages(store, study="s1")] == [
        ("study 's1', in experiment autocompress-sst2", ui_url(sst2.experiment_id)),
        ("study 's1', its search run (trials nested)", ui_url(sst2.experiment_id, runs["s1"]))]
    with pytest.raises(ConfigError, match=r"^--study ghost: no search of that name in tracking store '.*' "
                                          r"\(studies there: s1, s2\)$"):
        ui_pages(store, study="ghost")
    with pytest.raises(ConfigError, match=r"^MLflow tracking store 'nosuch://x' cannot be used \(.*\); "
                                          r"check --tracking-uri$"):
        ui_pages("nosuch://x")


def test_ui_prints_the_pages_then_becomes_the_mlflow_ui(store, tmp_path, monkeypatch, capsys):
    sst2, _, runs = _two_experiments(store, tmp_path, monkeypatch)
    started: list[list[str]] = []

    def fake_execv(exe, cmd):
        started.append(cmd)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execv", fake_execv)
    code, out, err = run_cli(monkeypatch, capsys, "ui", "--tracking-uri", store, "--port", 5055, "--study", "s2")
    assert code == 0, err
    assert out.splitlines() == [
        f"MLflow UI: http://127.0.0.1:5055  (store: {store}; Ctrl-C to stop)",
        f"  study 's2', in experiment autocompress-sst2: {ui_url(sst2.experiment_id, port=5055)}",
        f"  study 's2', its search run (trials nested): {ui_url(sst2.experiment_id, runs['s2'], port=5055)}"]
    assert started[0][1:] == ["ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", "5055",
                              "--workers", "1"]
    code, out, err = run_cli(monkeypatch, capsys, "ui", "--tracking-uri", store, "--study", "ghost")
    assert code == 2 and out == "" and len(started) == 1  # refused before the UI starts
    assert err.startswith("error: --study ghost: no search of that name") and len(err.strip().splitlines()) == 1


def test_open_store_and_store_exists(store, tmp_path):
    assert store_exists(store) and not store_exists(f"sqlite:///{tmp_path / 'none.db'}")
    assert store_exists("http://tracking.lan:5000")  # a server: asked when used
    assert not hasattr(open_store(store), "experiment_id")
    with pytest.raises(ConfigError, match="^MLflow tracking store 'nosuch://x' cannot be used"):
        open_store("nosuch://x")


def test_a_relative_sqlite_store_is_opened_where_the_working_directory_is_now(tmp_path, monkeypatch):
    from autocompress.tracking import absolute_sqlite

    monkeypatch.chdir(tmp_path)
    assert absolute_sqlite("sqlite:///mlflow.db") == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert absolute_sqlite("sqlite:///runs/m.db?timeout=5") == f"sqlite:///{tmp_path.resolve()}/runs/m.db?timeout=5"
    for uri in ("sqlite:////srv/mlflow.db", "postgresql://u@h/db", "http://localhost:5000"):
        assert absolute_sqlite(uri) == uri
