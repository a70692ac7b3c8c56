"""Experiment tracking at the edge. MLflow: one parent run per search, one nested run per trial.

The engine never sees a tracker. `NullTracker` is the default and does nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # in the working directory, like MLflow's own default


class Tracker(Protocol):
    tracking_uri: str | None  # where the runs go; None when nothing is tracked

    def start_search(self, name: str, params: dict[str, Any], tags: dict[str, str], run_id: str | None) -> str | None: ...
    def start_trial(self, parent: str | None, name: str, params: dict[str, Any]) -> str | None: ...
    def log_metrics(self, run: str | None, metrics: dict[str, float], step: int | None = None) -> None: ...
    def set_tags(self, run: str | None, tags: dict[str, str]) -> None: ...
    def log_artifacts(self, run: str | None, folder: Path, artifact_path: str | None = None) -> None: ...
    def end(self, run: str | None, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracks nothing (tests, library use without MLflow)."""

    tracking_uri: str | None = None

    def start_search(self, name, params, tags, run_id):
        return None

    def start_trial(self, parent, name, params):
        return None

    def log_metrics(self, run, metrics, step=None):
        pass

    def set_tags(self, run, tags):
        pass

    def log_artifacts(self, run, folder, artifact_path=None):
        pass

    def end(self, run, status="FINISHED"):
        pass


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = str(v)[:500]
    return out


class MlflowTracker:
    """MLflow through its client API (no global active run): safe with several trials in flight."""

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str | None = "autocompress",
                 artifact_root: Path | None = None):
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        if experiment is None:  # only runs that already exist are used
            return
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            root = (artifact_root or Path("mlartifacts")).resolve()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=root.as_uri())

    def start_search(self, name, params, tags, run_id):
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags={**tags, "autocompress.kind": "search"})
        self._params(run.info.run_id, params)
        return run.info.run_id

    def start_trial(self, parent, name, params):
        tags = {"autocompress.kind": "trial"}
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self._params(run.info.run_id, params)
        return run.info.run_id

    def _params(self, run: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = _flat(params)
        items = [Param(k, v) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run, params=items[i : i + 100])

    def log_metrics(self, run, metrics, step=None):
        from mlflow.entities import Metric

        if run is None:
            return
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(run, metrics=items)

    def set_tags(self, run, tags):
        from mlflow.entities import RunTag

        if run is not None:
            self.client.log_batch(run, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifacts(self, run, folder, artifact_path=None):
        if run is not None:
            self.client.log_artifacts(run, str(folder), artifact_path)

    def end(self, run, status="FINISHED"):
        if run is not None:
            self.client.set_terminated(run, status=status)

    def register(self, run: str, artifact_path: str, name: str) -> str:
        """Register a run's artifact folder as a new version of model `name`; returns the version."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException:
            pass  # it exists already
        source = f"{self.client.get_run(run).info.artifact_uri}/{artifact_path}"
        return str(self.client.create_model_version(name, source, run_id=run).version)


def open_tracker(uri: str | None, off: bool, experiment: str) -> Tracker:
    """The tracker for a search of `experiment`: MLflow at `uri` (experiment `autocompress-<experiment>`),
    or a NullTracker when `off` or no URI is given. A store that cannot be used is a one-line ConfigError.
    """
    if off or uri is None:
        return NullTracker()
    try:
        return MlflowTracker(uri, experiment=f"autocompress-{experiment}")
    except Exception as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"MLflow tracking store '{uri}' cannot be used ({first}); "
                          "check --tracking-uri or pass --no-tracking") from None
