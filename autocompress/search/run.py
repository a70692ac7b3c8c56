"""A whole search, and a worker joining one.

`run_search` is what `autocompress search` does: prepare the study and its MLflow parent run
once, run the trials in this process or in local worker processes, write the report, log it to
the parent run and close that run. `join_search` is what `autocompress worker` does: open a
study a search prepared and run trials until the study's budget is used.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Experiment
from ..engine.pipeline import EngineInputs
from ..log import Log, silent
from ..stopping import ended_if_stopped
from ..teacher import Teacher
from ..tracking import NullTracker, Tracker, open_tracker
from .publish import publish_report, trial_runs
from .recovery import used
from .report import Report, write_report
from .storage import DEFAULT_STORAGE, open_existing_study
from .reference import Reference
from .study import SearchSettings, prepare_search, run_trials, settings_of
from .summary import search_summary
from .workers import run_workers, worker_command


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished `run_search` leaves: the study, the teacher's reference, the report and its files."""

    study: Any  # optuna.Study
    reference: Reference
    parent_run: str | None  # the MLflow parent run (closed), None without tracking
    report: Report
    report_md: Path
    plot_png: Path
    worker_exit_codes: tuple[int, ...]  # one per local worker process; empty when trials ran in this process


def split_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of `workers` processes sharing `cores` (default: this machine's) without
    oversubscribing them: an oversubscribed machine makes every process crawl."""
    available = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, available // workers)


def with_threads(exp: Experiment, threads: int) -> Experiment:
    """The experiment with `threads` torch threads for timing (recorded in each trial); this process
    trains with that many threads from now on."""
    import torch

    torch.set_num_threads(threads)
    return exp.model_copy(update={"measure": exp.measure.model_copy(update={"threads": threads})})


def log_report(tracker: Tracker, parent: str | None, report: Report, md: Path, png: Path,
               runs: dict[int, str] | None = None) -> None:
    """Attach the report and its plot to the parent run (under `report/`), with the front's summary, and
    describe it there; tag the trial runs in `runs` (trial number -> run) by the front and the picks."""
    with tempfile.TemporaryDirectory() as tmp:
        for f in (md, png):
            (Path(tmp) / f.name).write_bytes(f.read_bytes())
        tracker.log_artifacts(parent, Path(tmp), "report")
    tracker.log_metrics(parent, {"hypervolume": report.hypervolume, "pareto_size": len(report.front)})
    if report.best:
        tracker.set_tags(parent, {"best_trial": str(report.best.key)})
    if report.knee:
        tracker.set_tags(parent, {"knee_trial": str(report.knee.key)})
    publish_report(tracker, parent, report, runs or {})


def run_search(exp: Experiment, settings: SearchSettings, *, tracker: Tracker | None = None, workers: int = 1,
               experiment_file: Path | None = None, report_dir: Path | None = None, log: Log = silent,
               prepared: tuple[EngineInputs, Teacher] | None = None, remeasure: bool = True) -> SearchOutcome:
    """Run (or resume) a search until its study holds `settings.trials` finished trials, then report.

    workers: with more than one, that many `autocompress worker` processes (each loading
        `experiment_file`) share the study and this machine's cores; they get fewer when fewer
        trials are left to run.
    report_dir: where report.md and pareto.png go (default <out_dir>/<study>).
    prepared: the experiment's engine inputs and teacher, when the caller holds them already.
    remeasure: time the teacher and the front side by side for the report (False: the report uses
        each trial's own timing and shows no speed ratio, as `autocompress report --no-remeasure`).
    """
    started = time.monotonic()
    tracker = tracker or NullTracker()
    threads = None
    if workers > 1:
        if experiment_file is None:
            raise ValueError("local worker processes load the experiment from its file: pass experiment_file")
        threads = split_threads(workers)
        exp = with_threads(exp, threads)
    search = prepare_search(exp, settings, tracker, log, prepared)  # study and MLflow parent run: created once, here
    with ended_if_stopped(tracker, search.parent):  # Ctrl-C or SIGTERM: the search's run ends KILLED
        n = min(workers, max(0, settings.trials - used(search.study, running=False)))
        codes: tuple[int, ...] = ()
        if workers > 1 and n:
            log(f"search: {n} local workers, {threads} torch thread(s) each; they share this machine, so latency is "
                "measured under load: for latency you can trust, run one worker per machine (`autocompress worker`)")
            commands = [worker_command(experiment_file, settings.study, settings.storage, settings.out_dir,
                                       settings.seed + i + 1, f"worker-{i + 1}", tracker.tracking_uri, threads,
                                       exp.train.device)
                        for i in range(n)]
            codes = tuple(run_workers(commands, log))
            if any(codes):
                log(f"search: worker exit codes {list(codes)}; the study keeps every trial they finished")
        else:
            run_trials(search, log)
        if remeasure:
            log("search: timing the teacher, the baselines and the front side by side for the report, the order "
                f"rotating every round ({settings.confirm_rounds} rounds); the pick's latency is confirmed there")
        report, md, png = write_report(search.study, report_dir or settings.out_dir / settings.study, remeasure,
                                       settings.confirm_rounds, memory=settings.memory)
        log_report(tracker, search.parent, report, md, png, trial_runs(search.study))
        tracker.end(search.parent, "FINISHED")
    for line in search_summary(report, storage=settings.storage, out_dir=settings.out_dir, report_md=md, plot_png=png,
                               tracking_uri=tracker.tracking_uri, parent_run=search.parent,
                               seconds=time.monotonic() - started):
        log(line)
    return SearchOutcome(search.study, search.ref, search.parent, report, md, png, codes)


def join_search(exp: Experiment, study: str, storage: str = DEFAULT_STORAGE, *, out_dir: Path = Path("out"),
                seed: int | None = None, trials: int | None = None, threads: int | None = None,
                tracking_uri: str | None = None, no_tracking: bool = False, who: str = "worker",
                log: Log = silent) -> int:
    """Join study `study` (started by a search, possibly on another machine) and run trials until its budget
    is used; returns how many this process ran.

    The space, budget and sampler come from the study. seed: this worker's sampler seed (default: its pid).
    trials: raise the study's trial budget. tracking_uri: default, the one the search stored in the study.
    """
    if threads is not None:
        exp = with_threads(exp, threads)
    found = open_existing_study(study, storage)
    settings = settings_of(found, storage=storage, out_dir=out_dir, trials=trials,
                           seed=seed if seed is not None else os.getpid())
    uri = tracking_uri or found.user_attrs.get("tracking_uri")
    tracker = open_tracker(uri, no_tracking, exp.name)
    return run_trials(prepare_search(exp, settings, tracker, log), log, who=who)
