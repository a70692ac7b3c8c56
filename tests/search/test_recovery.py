"""What counts toward the trial budget, and what happens to trials whose process died (real in-memory studies)."""

import os
import socket

import optuna
import pytest

from autocompress.search.recovery import DeadTrialHandler, claim, counts, fail_dead_local_trials, used

State = optuna.trial.TrialState
NO_SUCH_PID = 2**22 + 1  # above Linux's PID_MAX_LIMIT: no process ever has it


class RecordingTracker:
    tracking_uri = None

    def __init__(self):
        self.calls: list[tuple] = []

    def set_tags(self, run, tags):
        self.calls.append(("tags", run, tags))

    def end(self, run, status="FINISHED"):
        self.calls.append(("end", run, status))


def _study():
    return optuna.create_study(directions=["maximize", "minimize", "minimize"])


def _running(study, depth: int = 2, **attrs):
    t = study.ask()
    t.suggest_int("depth", depth, depth)
    for k, v in attrs.items():
        t.set_user_attr(k, v)
    return t


@pytest.fixture
def mixed():
    """Trials 0..5: complete, pruned, failed by its own error, failed (killed), running, waiting."""
    s = _study()
    s.tell(s.ask(), [0.9, 1.0, 1.0])
    s.tell(s.ask(), state=State.PRUNED)
    own = s.ask()
    own.set_user_attr("error", "RuntimeError: boom")
    s.tell(own, state=State.FAIL)
    s.tell(s.ask(), state=State.FAIL)
    s.ask()
    s.enqueue_trial({"depth": 1})
    return s


def test_counts_trials_that_ran_to_an_end(mixed):
    assert [counts(t) for t in mixed.trials] == [True, True, True, False, False, False]


def test_used_counts_finished_and_optionally_running(mixed):
    assert used(mixed) == 4  # three that ended, one running
    assert used(mixed, running=False) == 3
    assert used(mixed, before=2) == 2
    assert used(mixed, before=5, running=False) == 3


def test_claim_records_host_and_pid():
    t = _study().ask()
    claim(t)
    assert t.study.trials[0].user_attrs == {"host": socket.gethostname(), "pid": os.getpid()}


def test_a_dead_local_trial_is_failed_closed_and_queued_again():
    s = _study()
    dead = _running(s, depth=3, host=socket.gethostname(), pid=NO_SUCH_PID, mlflow_run_id="run-7")
    lines: list[str] = []
    tracker = RecordingTracker()
    assert fail_dead_local_trials(s, DeadTrialHandler(tracker, lines.append)) == [dead.number]
    trials = s.trials
    assert trials[dead.number].state == State.FAIL and not counts(trials[dead.number])
    queued = [t for t in trials if t.state == State.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == {"depth": 3}  # its next run's params
    assert queued[0].user_attrs == {"retry_of": dead.number, "retries": 1}
    assert tracker.calls == [("tags", "run-7", {"state": "FAIL", "error": "the worker running this trial died"}),
                             ("end", "run-7", "FAILED")]
    assert lines == [f"search: trial {dead.number} died with its worker; its configuration is queued again"]
    assert fail_dead_local_trials(s, DeadTrialHandler(tracker, lines.append)) == []  # handled once


def test_a_trial_out_of_retries_is_not_queued_again():
    s = _study()
    dead = _running(s, host=socket.gethostname(), pid=NO_SUCH_PID, retries=2)
    lines: list[str] = []
    assert fail_dead_local_trials(s, DeadTrialHandler(RecordingTracker(), lines.append, max_retries=2)) == [0]
    assert [t.state for t in s.trials] == [State.FAIL]
    assert lines == [f"search: trial {dead.number} died with its worker; not retried (2 retries already)"]


def test_live_and_remote_trials_are_left_alone():
    s = _study()
    live = s.ask()
    claim(live)  # this very process
    _running(s, host="another-machine", pid=NO_SUCH_PID)  # left to its heartbeat
    tracker = RecordingTracker()
    assert fail_dead_local_trials(s, DeadTrialHandler(tracker), grace_s=-1) == []
    assert [t.state for t in s.trials] == [State.RUNNING, State.RUNNING]
    assert tracker.calls == []


def test_an_unclaimed_trial_is_failed_only_after_the_grace_period():
    s = _study()
    t = _running(s)
    handler = DeadTrialHandler(RecordingTracker())
    assert fail_dead_local_trials(s, handler, grace_s=3600) == []
    assert fail_dead_local_trials(s, handler, grace_s=-1) == [t.number]
    assert [x.state for x in s.trials] == [State.FAIL, State.WAITING]
