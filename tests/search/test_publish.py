"""Exporting a study's pick and logging it to the trial's MLflow run."""

from pathlib import Path

import pytest

from autocompress.config import Experiment
from autocompress.engine.errors import ConfigError
from autocompress.export import verify
from autocompress.search.publish import ExportedTrial, export_pick, log_export
from autocompress.search.run import run_search
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings
from autocompress.tracking import MlflowTracker

SPACE = {"depth": {"low": 1, "high": 2}, "bits": {"choices": [8]}, "train_steps": {"low": 2, "high": 2},
         "fixed": {"batch_size": 16}}


def test_export_the_best_trial_log_and_register_it(tiny_experiment, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, experiment="t", artifact_root=tmp_path / "art")
    settings = SearchSettings(baselines="none", memory=False, study="p", space=parse_space(SPACE, "s"), trials=1, storage=storage,
                              out_dir=tmp_path / "out")
    done = run_search(Experiment.from_file(tiny_experiment), settings, tracker=tracker)
    trial = done.study.trials[0]

    exported = export_pick("p", storage, "best", tmp_path / "model")
    assert exported == ExportedTrial("p", 0, tmp_path / "model", trial.user_attrs["mlflow_run_id"])
    verify(exported.folder)  # a complete, self-consistent export
    with pytest.raises(ConfigError, match="already exists"):
        export_pick("p", storage, "0", tmp_path / "model")
    assert export_pick("p", storage, "0", tmp_path / "model", force=True).folder == tmp_path / "model"

    assert log_export(exported, uri) is None  # logged, not registered
    assert log_export(exported, uri, register="tiny-model") == "1"
    files = {f.path for f in tracker.client.list_artifacts(exported.run_id, "export")}
    assert files == {f"export/{p.name}" for p in exported.folder.iterdir()}
    versions = tracker.client.search_model_versions("name='tiny-model'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", exported.run_id)]
    # under Models: the version's source is the trial run's `export` artifacts, and it says which trial it is
    version = tracker.client.get_model_version("tiny-model", "1")
    assert version.source == f"{tracker.client.get_run(exported.run_id).info.artifact_uri}/export"
    assert version.status == "READY" and version.tags == {"autocompress.study": "p", "autocompress.trial": "0"}
    assert tracker.client.get_registered_model("tiny-model").latest_versions[0].version == version.version
    with pytest.raises(ConfigError, match="^--register 'no/slash': the Model Registry refuses it"):
        log_export(exported, uri, register="no/slash")


def test_a_trial_searched_without_tracking_cannot_be_registered():
    untracked = ExportedTrial("s", 3, Path("nowhere"), None)
    assert log_export(untracked, "nosuch://never-opened") is None
    with pytest.raises(ConfigError, match="this trial has no MLflow run .* cannot --register"):
        log_export(untracked, "nosuch://never-opened", register="m")
