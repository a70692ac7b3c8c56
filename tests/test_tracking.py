"""Trackers: MLflow against a sqlite store in tmp_path, the NullTracker, and open_tracker's choices and errors."""

import pytest

from autocompress.errors import ConfigError
from autocompress.tracking import DEFAULT_TRACKING_URI, MlflowTracker, NullTracker, open_tracker


@pytest.fixture
def tracker(tmp_path):
    return MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="t", artifact_root=tmp_path / "art")


def test_default_uri_is_a_sqlite_file_in_the_working_directory():
    assert DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"


def test_null_tracker_tracks_nothing(tmp_path):
    t = NullTracker()
    assert t.tracking_uri is None
    assert t.start_search("s", {"a": 1}, {}, None) is None
    assert t.start_trial(None, "trial-0000", {"bits": 8}) is None
    assert t.log_metrics(None, {"accuracy": 0.5}) is None
    assert t.set_tags(None, {"x": "y"}) is None
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
    assert tracker.register(run, "export", "tiny") == "1"
    assert tracker.register(run, "export", "tiny") == "2"  # an existing model gets a new version
    # a tracker without an experiment only uses runs that exist
    other = MlflowTracker(tracker.tracking_uri, experiment=None)
    assert not hasattr(other, "experiment_id")
    other.set_tags(run, {"seen": "yes"})
    assert tracker.client.get_run(run).data.tags["seen"] == "yes"


def test_open_tracker(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
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
