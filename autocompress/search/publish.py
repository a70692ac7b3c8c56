"""Export a study's chosen trial to a self-contained folder, and log that folder to the trial's MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..tracking import DEFAULT_TRACKING_URI
from .select import trial_for_pick


@dataclass(frozen=True)
class ExportedTrial:
    study: str
    trial: int
    folder: Path  # the export
    run_id: str | None  # the trial's MLflow run; None when the search ran without tracking


def export_pick(study: str, storage: str, pick: str, out: Path, *, fmt: str | None = None,
                force: bool = False) -> ExportedTrial:
    """Export trial `pick` (best, knee or a number) of study `study` into folder `out`, in format `fmt`
    (None: the format of the runtime it was measured on)."""
    from ..export import export_folder

    trial = trial_for_pick(study, storage, pick)
    folder = export_folder(Path(trial.user_attrs["folder"]), out, force=force, fmt=fmt)
    return ExportedTrial(study, trial.number, folder, trial.user_attrs.get("mlflow_run_id") or None)


def log_export(exported: ExportedTrial, tracking_uri: str = DEFAULT_TRACKING_URI,
               register: str | None = None) -> str | None:
    """Log the export to its trial's MLflow run (artifact path `export`); with `register`, also register it
    as a new version of that model in the Model Registry. Returns the version registered, if any.

    A trial without an MLflow run has nothing to log to; asking to register it is a ConfigError.
    """
    if exported.run_id is None:
        if register:
            raise ConfigError("this trial has no MLflow run (searched with --no-tracking): cannot --register")
        return None
    from ..tracking import MlflowTracker

    tracker = MlflowTracker(tracking_uri, experiment=None)
    tracker.log_artifacts(exported.run_id, exported.folder, "export")
    return tracker.register(exported.run_id, "export", register) if register else None
