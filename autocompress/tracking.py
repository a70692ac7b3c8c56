"""Experiment tracking at the edge. MLflow: one parent run per search, one nested run per trial.

The engine never sees a tracker. `NullTracker` is the default and does nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .engine.errors import ConfigError

if TYPE_CHECKING:
    from .config import Experiment
    from .data import DataSource
    from .engine.batches import Encoded, TaskData

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # in the working directory, like MLflow's own default
UI_HOST, UI_PORT = "127.0.0.1", 5000  # where `autocompress ui` serves the MLflow UI by default
EXPERIMENT_PREFIX = "autocompress-"  # a search of experiment X logs to MLflow experiment autocompress-X

# MLflow's own tag names (mlflow.utils.mlflow_tags), and the experiment kind the UI writes when a user
# declares an experiment one of model training (its runs table, not the GenAI overview). MLflow 3.17's
# UI takes the kind from its mode switch instead, so the pages printed by `ui_url` also set that mode.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
UI_MODE = "workflowType=machine_learning"  # the UI's "Model training" mode, as a URL query
NOTE_TAG = "mlflow.note.content"  # a run's description (markdown)
CONTEXT_TAG = "mlflow.data.context"  # what a run used a dataset input for: train, validation or test


@dataclass(frozen=True)
class SplitInput:
    """One data split as a run input: the runs table's Dataset column shows its name and digest."""

    context: str  # train, validation or test
    name: str
    digest: str  # of the tokenized rows and their labels
    rows: int
    source: str  # a local data file, or the hub dataset's id
    hub_config: str | None = None  # hub datasets only: the configuration (e.g. sst2)
    hub_split: str | None = None  # hub datasets only: the split the rows come from; None for a local file


class Tracker(Protocol):
    tracking_uri: str | None  # where the runs go; None when nothing is tracked

    def start_search(self, name: str, params: dict[str, Any], tags: dict[str, str], run_id: str | None) -> str | None: ...
    def start_trial(self, parent: str | None, name: str, params: dict[str, Any]) -> str | None: ...
    def log_metrics(self, run: str | None, metrics: dict[str, float], step: int | None = None) -> None: ...
    def set_tags(self, run: str | None, tags: dict[str, str]) -> None: ...
    def log_datasets(self, run: str | None, splits: Sequence[SplitInput]) -> None: ...
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

    def log_datasets(self, run, splits):
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
        self.client = MlflowClient(tracking_uri=absolute_sqlite(tracking_uri))
        self.tracking_uri = tracking_uri
        if experiment is None:  # only runs that already exist are used
            return
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            root = (artifact_root or Path("mlartifacts")).resolve()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=root.as_uri(),
                                                               tags={KIND_TAG: KIND})
            return
        self.experiment_id = found.experiment_id
        if KIND_TAG not in found.tags:  # made before the kind was declared; a kind someone chose stays
            self.client.set_experiment_tag(self.experiment_id, KIND_TAG, KIND)

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

    def log_datasets(self, run, splits):
        """Log the splits as the run's dataset inputs, each tagged with its context (train, validation, test).
        Logging the same split to the same run again adds nothing."""
        from mlflow.entities import DatasetInput, InputTag

        if run is None or not splits:
            return
        inputs = [DatasetInput(_dataset(s), [InputTag(CONTEXT_TAG, s.context)]) for s in splits]
        self.client.log_inputs(run, datasets=inputs)

    def log_artifacts(self, run, folder, artifact_path=None):
        if run is not None:
            self.client.log_artifacts(run, str(folder), artifact_path)

    def end(self, run, status="FINISHED"):
        if run is not None:
            self.client.set_terminated(run, status=status)

    def register(self, run: str, artifact_path: str, name: str, tags: dict[str, str] | None = None) -> str:
        """Register a run's artifact folder as a new version of model `name` (created when new), with `tags`
        on the version; returns the version. A name the registry refuses is a ConfigError."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                first = (str(err).splitlines() or ["refused"])[0]
                raise ConfigError(f"--register {name!r}: the Model Registry refuses it ({first})") from None
        source = f"{self.client.get_run(run).info.artifact_uri}/{artifact_path}"
        return str(self.client.create_model_version(name, source, run_id=run, tags=tags).version)


def _dataset(split: SplitInput):
    """The MLflow dataset entity of a split: MLflow's metadata-only dataset, with the row count as its profile."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset

    meta = MetaDataset(_dataset_source(split), name=split.name, digest=split.digest).to_dict()
    return Dataset(name=meta["name"], digest=meta["digest"], source_type=meta["source_type"], source=meta["source"],
                   profile=json.dumps({"num_rows": split.rows}))


def _dataset_source(split: SplitInput):
    """Where MLflow says a split's rows come from: a hub dataset split, or a local file."""
    if split.hub_split is not None:
        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

        return HuggingFaceDatasetSource(split.source, config_name=split.hub_config, split=split.hub_split)
    from mlflow.data.sources import (
        LocalArtifactDatasetSource,  # registered by MLflow when mlflow.data loads
    )

    return LocalArtifactDatasetSource(split.source)


def rows_digest(enc: Encoded) -> str:
    """A short digest of a tokenized split (the data cache's, cut to 10 characters for the UI)."""
    from .data import rows_digest as full

    return full(enc)[:10]


def split_inputs(exp: Experiment, data: TaskData) -> tuple[SplitInput, ...]:
    """The experiment's train, validation and test splits as run inputs, named `<experiment>-<split>`."""
    from .data import data_source
    from .engine.batches import SPLITS

    src = data_source(exp)
    return tuple(SplitInput(split, f"{exp.name}-{split}", rows_digest(data.split(split)), len(data.split(split)),
                            *_origin(exp, src, split)) for split in SPLITS)


def _origin(exp: Experiment, src: DataSource, split: str) -> tuple[str, str | None, str | None]:
    """Where a split's rows come from: (local file, None, None), or (hub id, configuration, hub split).
    Validation rows without a file or hub split of their own are held out of the training rows."""
    if src.hub is None:
        return str(exp.path(src.files.get(split) or src.files["train"]).resolve()), None, None
    hub = src.hub
    return hub.path, hub.name, hub.splits()[split] or hub.train_split


def _ui_host(host: str) -> str:
    """The host part of a URL to the UI bound to `host`: a wildcard address means this machine."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def ui_root(host: str = UI_HOST, port: int = UI_PORT) -> str:
    """The address of the MLflow UI that `autocompress ui --host HOST --port PORT` serves."""
    return f"http://{_ui_host(host)}:{port}"


def ui_url(experiment_id: str, run_id: str | None = None, host: str = UI_HOST, port: int = UI_PORT) -> str:
    """Where the MLflow UI served by `autocompress ui` shows an experiment's runs table, or one run of it,
    in its "Model training" mode (without it, MLflow 3.17 opens an experiment on its GenAI overview)."""
    runs = f"{ui_root(host, port)}/#/experiments/{experiment_id}/runs"
    return f"{runs}/{run_id}?{UI_MODE}" if run_id else f"{runs}?{UI_MODE}"


def search_url(tracker: Tracker, host: str = UI_HOST, port: int = UI_PORT) -> str | None:
    """The UI page of the experiment a tracker logs a search to; None when nothing is tracked."""
    experiment_id = getattr(tracker, "experiment_id", None)
    return ui_url(experiment_id, host=host, port=port) if experiment_id is not None else None


@dataclass(frozen=True)
class UiPage:
    """A page `autocompress ui` points to: what it shows, and its address."""

    label: str
    url: str


def ui_pages(tracking_uri: str, host: str = UI_HOST, port: int = UI_PORT, study: str | None = None) -> list[UiPage]:
    """The autocompress experiments in a tracking store and their UI pages, with the studies they hold;
    with `study`, that search's experiment page and its parent run's page (an unknown study is a ConfigError)."""
    client = open_store(tracking_uri).client
    experiments = sorted(client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'"),
                         key=lambda e: e.name)
    searches = _search_runs(client, [e.experiment_id for e in experiments])
    if study is None:
        return [UiPage(f"{e.name} (studies: {', '.join(sorted(searches.get(e.experiment_id, {}))) or 'none'})",
                       ui_url(e.experiment_id, host=host, port=port)) for e in experiments]
    names = {e.experiment_id: e.name for e in experiments}
    for experiment_id, runs in searches.items():
        if study in runs:
            return [UiPage(f"study '{study}', in experiment {names[experiment_id]}",
                           ui_url(experiment_id, host=host, port=port)),
                    UiPage(f"study '{study}', its search run (trials nested)",
                           ui_url(experiment_id, runs[study], host, port))]
    known = sorted(s for runs in searches.values() for s in runs)
    raise ConfigError(f"--study {study}: no search of that name in tracking store '{tracking_uri}' "
                      f"({'studies there: ' + ', '.join(known) if known else 'it holds no search yet'})")


def _search_runs(client, experiment_ids: list[str]) -> dict[str, dict[str, str]]:
    """experiment id -> {study name: its parent run id}, for the searches logged to those experiments."""
    out: dict[str, dict[str, str]] = {}
    if not experiment_ids:
        return out
    runs = client.search_runs(experiment_ids, filter_string="tags.`autocompress.kind` = 'search'", max_results=5000)
    for run in runs:
        name = run.data.tags.get("autocompress.study", run.info.run_name)
        out.setdefault(run.info.experiment_id, {})[name] = run.info.run_id
    return out


def open_store(uri: str) -> MlflowTracker:
    """MLflow at `uri`, for runs that exist already (no experiment is chosen or made); a store that
    cannot be used is a one-line ConfigError."""
    from .store_lock import store_lock

    try:
        with store_lock(uri):
            tracker = MlflowTracker(uri, experiment=None)
            tracker.client.search_experiments(max_results=1)  # opens the store (creating or upgrading its schema)
        return tracker
    except Exception as err:
        raise _unusable(uri, err, "check --tracking-uri") from None


def _unusable(uri: str, err: Exception, hint: str) -> ConfigError:
    first = (str(err).splitlines() or [type(err).__name__])[0]
    return ConfigError(f"MLflow tracking store '{uri}' cannot be used ({first}); {hint}")


def absolute_sqlite(uri: str) -> str:
    """A sqlite URI with a relative path made absolute from the working directory now (others unchanged).

    MLflow keeps one store per URI string for the life of the process, so a relative one would keep writing to
    the file of the directory it was first opened in."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):].startswith("/"):
        return uri
    path, sep, query = uri[len(prefix):].partition("?")
    return f"{prefix}{Path(path).resolve()}{sep}{query}"


def store_exists(uri: str) -> bool:
    """False for a sqlite store whose file is not there (opening it would create an empty one)."""
    prefix = "sqlite:///"
    return not uri.startswith(prefix) or Path(uri[len(prefix):].split("?")[0]).is_file()


def open_tracker(uri: str | None, off: bool, experiment: str) -> Tracker:
    """The tracker for a search of `experiment`: MLflow at `uri` (experiment `autocompress-<experiment>`),
    or a NullTracker when `off` or no URI is given. A store that cannot be used is a one-line ConfigError.
    """
    if off or uri is None:
        return NullTracker()
    from .store_lock import store_lock

    try:
        with store_lock(uri):  # its schema and experiment created once, also by workers started together
            return MlflowTracker(uri, experiment=f"{EXPERIMENT_PREFIX}{experiment}")
    except Exception as err:
        raise _unusable(uri, err, "check --tracking-uri or pass --no-tracking") from None
