"""Publish a search to MLflow: the parent run's description, tags that pick out the Pareto front and the
recommended trial among the trial runs, and exports (logged to their trial's run, optionally registered)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..describe import summarize
from ..engine.errors import ConfigError
from ..log import Log, silent
from ..tracking import (
    DEFAULT_TRACKING_URI,
    NOTE_TAG,
    MlflowTracker,
    Tracker,
    open_store,
    store_exists,
)
from .select import trial_for_pick

if TYPE_CHECKING:
    from .pareto import Point
    from .report import Report
    from .study import SearchSettings

FRONT_TAG, PICK_TAG, KNEE_TAG = "pareto_front", "recommended", "knee"  # on trial runs: "true" or "false"


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
    """Log the export to its trial's MLflow run (artifact path `export`); with `register`, also register that
    folder as a new version of that model in the Model Registry. Returns the version registered, if any.

    A trial without an MLflow run has nothing to log to; asking to register it is a ConfigError, and so is
    a store that does not hold the trial's run.
    """
    if exported.run_id is None:
        if register:
            raise ConfigError("this trial has no MLflow run (searched with --no-tracking): cannot --register")
        return None
    tracker = open_store(tracking_uri)
    _check_run(tracker, exported, tracking_uri)
    tracker.log_artifacts(exported.run_id, exported.folder, "export")
    if not register:
        return None
    tags = {"autocompress.study": exported.study, "autocompress.trial": str(exported.trial)}
    return tracker.register(exported.run_id, "export", register, tags)


def _check_run(tracker: MlflowTracker, exported: ExportedTrial, tracking_uri: str) -> None:
    """A one-line ConfigError when the store at `tracking_uri` does not hold the trial's run."""
    from mlflow.exceptions import MlflowException

    try:
        tracker.client.get_run(exported.run_id)
    except MlflowException:
        raise ConfigError(f"trial {exported.trial}'s MLflow run {exported.run_id} is not in tracking store "
                          f"'{tracking_uri}'; pass the --tracking-uri the search logged to") from None


def trial_runs(study) -> dict[int, str]:
    """Trial number -> its MLflow run, for the study's trials that logged one."""
    return {t.number: t.user_attrs["mlflow_run_id"] for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("mlflow_run_id")}


def run_marks(report: Report) -> dict[int, dict[str, str]]:
    """Trial number -> its tags, for every completed trial: on the Pareto front or not, the recommended
    pick or not, the knee or not."""
    front = {p.key for p in report.front}
    best = report.best.key if report.best else None
    knee = report.knee.key if report.knee else None
    return {p.key: {FRONT_TAG: _flag(p.key in front), PICK_TAG: _flag(p.key == best), KNEE_TAG: _flag(p.key == knee)}
            for p in report.points}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def publish_report(tracker: Tracker, parent: str | None, report: Report, runs: dict[int, str]) -> None:
    """Tag the trial runs in `runs` (trial number -> run) with `run_marks` and describe the report on the parent run."""
    for key, tags in run_marks(report).items():
        if key in runs:
            tracker.set_tags(runs[key], tags)
    tracker.set_tags(parent, {NOTE_TAG: report_note(report)})


def refresh_marks(study, report: Report, log: Log = silent) -> bool:
    """Move the tags and the parent run's description to `report` (after `autocompress report`), when the study
    was searched with tracking. False when there is nothing to refresh or its store cannot be reached (then
    one line goes to `log`: the report itself stands)."""
    uri = study.user_attrs.get("tracking_uri")
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if not uri or not parent:
        return False
    if not store_exists(uri):
        log(f"report: MLflow store '{uri}' is not here; its runs keep their tags (run from the search's folder)")
        return False
    try:
        publish_report(open_store(uri), parent, report, trial_runs(study))
    except Exception as err:  # the report is written either way
        log(f"report: MLflow runs not re-tagged ({(str(err).splitlines() or [type(err).__name__])[0]})")
        return False
    log(f"report: MLflow runs re-tagged ({FRONT_TAG}, {PICK_TAG}, {KNEE_TAG}) and described in '{uri}'")
    return True


def running_note(settings: SearchSettings, metric: str) -> str:
    """The parent run's description while its search runs (markdown)."""
    return "\n".join([
        f"### autocompress search `{settings.study}`",
        "",
        f"- status: **running**, until the study holds {settings.trials} finished trials",
        f"- budget: {settings.budget.describe(metric)}",
        f"- space: `{settings.space.name}`; sampler {settings.sampler}, seed {settings.seed}",
        "- candidates are chosen on validation rows; test rows are only reported",
    ]) + "\n"


def report_note(report: Report) -> str:
    """The parent run's description once a report is written (markdown): budget, trials, the recommended
    pick and the knee, and how to filter the front."""
    counts = ", ".join(f"{v} {k.lower()}" for k, v in report.counts.items())
    return "\n".join([
        f"### autocompress search `{report.study}`",
        "",
        f"- status: reported after {sum(report.counts.values())} trials ({counts})",
        f"- budget: {report.budget or 'none'}",
        "- recommended (highest validation score within budget): "
        + (_describe_pick(report, report.best) if report.best else "none: no trial met the budget"),
        "- knee (balanced trade-off): " + (_describe_pick(report, report.knee) if report.knee else "none"),
        (f"- Pareto front: {len(report.front)} trials ({', '.join(str(p.key) for p in report.front) or 'none'}); "
         f"filter the runs with `tags.{FRONT_TAG} = 'true'` (the pick: `tags.{PICK_TAG} = 'true'`)"),
        *_baseline_note(report),
        f"- hypervolume: {report.hypervolume:.4f}; report.md and pareto.png are in the artifacts, under `report/`",
        "- candidates are chosen on validation rows; test rows are only reported",
    ]) + "\n"


def _baseline_note(report: Report) -> list[str]:
    """The baselines (the teacher on each runtime, no search) and the verdict, for the search run's description."""
    if not report.baselines:
        return []
    metric = report.teacher.metric
    rows = "; ".join(f"{b.label} {b.measured.score:.4f} / {b.measured.bytes / 1e6:.2f} MB" for b in report.baselines)
    return [f"- baselines (validation {metric} / bytes; runs tagged `baseline = 'true'`): {rows}",
            *report.verdict_lines()]


def _describe_pick(report: Report, p: Point) -> str:
    """**trial N** (recipe): validation and test score, MB, batch-1 ms."""
    metric = report.teacher.metric
    measured = report.measured.get(p.key)
    test = "not measured" if measured is None or measured.test_score is None else f"{measured.test_score:.4f}"
    if report.latency_b1 is not None and p.key in report.latency_b1:
        ms = f"{report.latency_b1[p.key]:.2f} ms at batch 1 (timed beside the teacher)"
    else:
        ms = f"{p.latency_ms:.2f} ms at batch 1"
    recipe = summarize(report.recipes.get(p.key, {}))
    return (f"**trial {p.key}**" + (f" ({recipe})" if recipe else "")
            + f": validation {metric} {p.score:.4f}, test {metric} {test}, {p.bytes / 1e6:.2f} MB, {ms}")
