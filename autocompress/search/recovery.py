"""What counts toward a study's trial budget, and what happens to a trial whose process died.

A trial counts when it ran to an end: complete, pruned, or failed by its own error (recorded in
its `error` attribute). A trial whose worker was killed, or that was started after other workers
had filled the budget, does not count; a killed trial's configuration is queued again and its
MLflow run is closed as failed.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

from ..log import Log, silent
from ..tracking import Tracker
from .storage import GRACE_S

MAX_RETRIES = 2


def counts(trial) -> bool:
    import optuna

    state = trial.state
    if state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
        return True
    return state == optuna.trial.TrialState.FAIL and "error" in trial.user_attrs


def used(study, before: int | None = None, running: bool = True) -> int:
    """Trials that count toward the budget (and, with `running`, those still in flight)."""
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False):
        if before is not None and t.number >= before:
            continue
        n += counts(t) or (running and t.state == optuna.trial.TrialState.RUNNING)
    return n


def claim(trial) -> None:
    """Record which process runs the trial, so that a restart on this host can tell it died."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except OSError:
        return True


class DeadTrialHandler:
    """For a trial whose process died: close its MLflow run as failed, queue its configuration again."""

    def __init__(self, tracker: Tracker, log: Log = silent, max_retries: int = MAX_RETRIES):
        self.tracker, self.log, self.max_retries = tracker, log, max_retries

    def __call__(self, study, trial) -> None:
        run = trial.user_attrs.get("mlflow_run_id")
        if run:
            self.tracker.set_tags(run, {"state": "FAIL", "error": "the worker running this trial died"})
            self.tracker.end(run, "FAILED")
        if requeue(study, trial, self.max_retries):
            self.log(f"search: trial {trial.number} died with its worker; its configuration is queued again")
        else:
            self.log(f"search: trial {trial.number} died with its worker; not retried "
                     f"({trial.user_attrs.get('retries', 0)} retries already)")


def requeue(study, trial, max_retries: int = MAX_RETRIES) -> bool:
    """Queue `trial`'s configuration again, unless it was retried `max_retries` times already; whether it was."""
    retries = int(trial.user_attrs.get("retries", 0))
    if retries >= max_retries or not trial.params:
        return False
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "retries": retries + 1})
    return True


def requeue_interrupted(study, log: Log = silent, who: str = "search") -> list[int]:
    """The trials this process was running when it was told to stop: failed (uncounted: no `error`) and their
    configurations queued again, as a killed worker's are. Their MLflow runs were ended KILLED already."""
    import optuna

    host, pid, done = socket.gethostname(), os.getpid(), []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("host") != host or t.user_attrs.get("pid") != pid:
            continue
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue
        if requeue(study, t):
            done.append(t.number)
        else:
            log(f"{who}: trial {t.number} was interrupted; not retried ({t.user_attrs.get('retries', 0)} retries already)")
    return done


def _dead(trial, host: str, grace_s: float) -> bool:
    pid = trial.user_attrs.get("pid")
    if pid is None:  # never claimed: a worker claims its trial at once, so an old one has no live owner
        started = trial.datetime_start
        return started is not None and (datetime.now() - started).total_seconds() > grace_s
    return trial.user_attrs.get("host") == host and not _alive(int(pid))


def fail_dead_local_trials(study, handler: DeadTrialHandler, grace_s: float = GRACE_S) -> list[int]:
    """Trials left RUNNING by a process of this host that no longer exists (or never claimed by
    any process): mark failed, handle. Other hosts' trials are left to their heartbeat.
    """
    import optuna

    host, failed = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not _dead(t, host, grace_s):
            continue
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker got there first
        handler(study, t)
        failed.append(t.number)
    return failed
