"""Several workers on one study (sqlite and a real PostgreSQL), and a search killed with -9."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from autocompress.search.recovery import counts
from postgres import postgres_server

HOOKS = Path(__file__).resolve().parent.parent / "process_hooks"  # sitecustomize.py: test-only process hooks

SPACE = ("depth: {low: 1, high: 3}\nbits: {choices: [32, 8]}\nprune_ratio: {low: 0.0, high: 0.5, step: 0.25}\n"
         "train_steps: {low: 2, high: 4}\nfixed: {batch_size: 16}\n")


def cli(*args, cwd, timeout=600, wait=True, hooks: dict[str, object] | None = None):
    """Run the CLI in a new process; `hooks` set the test-only process hooks (tests/process_hooks)."""
    cmd = [sys.executable, "-m", "autocompress.cli", *map(str, args)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if hooks:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOOKS), env.get("PYTHONPATH")]))
        env.update({k: str(v) for k, v in hooks.items()})
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def space_file(tmp_path):
    p = tmp_path / "space.yaml"
    p.write_text(SPACE)
    return p


def _trial_runs(tracking_uri: str, study: optuna.Study) -> dict[int, object]:
    client = MlflowClient(tracking_uri)
    parent = study.user_attrs["mlflow_parent_run_id"]
    exp_id = client.get_run(parent).info.experiment_id
    runs = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=1000)
    by_trial: dict[int, object] = {}
    for r in runs:
        n = int(r.data.params["trial"])
        assert n not in by_trial, f"two MLflow runs for trial {n}"
        by_trial[n] = r
    return by_trial


def _check_budget_held(study: optuna.Study, budget: int, tracking_uri: str) -> None:
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == max(numbers) + 1  # unique, none missing
    assert sum(counts(t) for t in trials) == budget
    assert all(t.state.is_finished() for t in trials)  # nothing left RUNNING or WAITING
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    runs = _trial_runs(tracking_uri, study)
    assert set(runs) == {t.number for t in trials if "mlflow_run_id" in t.user_attrs}
    for t in complete:
        assert runs[t.number].info.status == "FINISHED"
        assert runs[t.number].data.metrics["accuracy"] == pytest.approx(t.values[0])


BOTH_AT_ONCE = {"AUTOCOMPRESS_TEST_RENDEZVOUS": 2}


def _overlapping_pids(study: optuna.Study) -> int:
    """The most processes whose trials ran at the same moment (from the trials' start and end times)."""
    spans = [(t.datetime_start, t.datetime_complete, t.user_attrs.get("pid")) for t in study.trials
             if t.datetime_start and t.datetime_complete and "pid" in t.user_attrs]
    return max(len({pid for s, e, pid in spans if s <= start < e}) for start, _, _ in spans)


def test_search_with_two_local_workers_on_sqlite(tiny_experiment, space_file, tmp_path):
    # each worker's first trial waits until both workers hold a running trial: parallel by construction
    proc = cli("search", tiny_experiment, "--baselines", "none", "--no-memory", "--space", space_file, "--trials", 5, "--study", "w2", "--workers", 2,
               cwd=tmp_path, hooks=BOTH_AT_ONCE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "worker-1: trial" in proc.stderr and "worker-2: trial" in proc.stderr
    study = optuna.load_study(study_name="w2", storage=f"sqlite:///{tmp_path / 'autocompress.db'}")
    _check_budget_held(study, 5, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len({t.user_attrs["pid"] for t in study.trials if "pid" in t.user_attrs}) == 2  # both workers ran trials
    assert _overlapping_pids(study) == 2  # ... and at the same time
    # both workers may create a trial for the last place of the budget; the later one gives it back
    # unrun (`not_run`, no metrics). Every trial that ran was measured.
    ran = [t for t in study.trials if "not_run" not in t.user_attrs]
    assert len(ran) == 5
    for t in ran:
        assert "metrics" in t.user_attrs, (t.number, t.state, t.user_attrs)
    # the cores are split between the workers (no oversubscription), and each trial records it
    assert {t.user_attrs["metrics"]["threads"] for t in ran} == {max(1, (os.cpu_count() or 1) // 2)}
    assert "Search report: study `w2`" in proc.stdout


def test_two_workers_on_postgresql_then_a_third_joins(tiny_experiment, space_file, tmp_path):
    with postgres_server(("optuna", "mlflow")) as pg:
        storage, tracking = pg + "optuna", pg + "mlflow"
        proc = cli("search", tiny_experiment, "--baselines", "none", "--no-memory", "--space", space_file, "--trials", 6, "--study", "pg", "--workers", 2,
                   "--storage", storage, "--tracking-uri", tracking, cwd=tmp_path, hooks=BOTH_AT_ONCE)
        assert proc.returncode == 0, proc.stderr[-3000:]
        study = optuna.load_study(study_name="pg", storage=storage)
        _check_budget_held(study, 6, tracking)
        assert len({t.user_attrs["pid"] for t in study.trials if "pid" in t.user_attrs}) == 2
        assert _overlapping_pids(study) == 2

        # another machine would run exactly this: join by name, raise the budget, add trials
        proc = cli("worker", tiny_experiment, "--study", "pg", "--storage", storage, "--trials", 8, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "worker: done, ran 2 trials" in proc.stderr
        study = optuna.load_study(study_name="pg", storage=storage)
        _check_budget_held(study, 8, tracking)  # the stored tracking URI was used: 8 runs under one parent


def test_worker_needs_a_study_made_by_search(tiny_experiment, tmp_path):
    proc = cli("worker", tiny_experiment, "--study", "ghost", cwd=tmp_path)
    assert proc.returncode == 2 and "no study named 'ghost'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _wait_for_marker(marker: Path, proc, timeout: float = 300) -> int:
    """The trial number the hang hook wrote once its trial is stopped mid-training."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        if marker.is_file() and marker.read_text():
            return int(marker.read_text())
        time.sleep(0.1)
    raise AssertionError("no trial reached the hang point in time")


def test_kill_9_mid_trial_then_the_same_command_again(tiny_experiment, tmp_path):
    space = tmp_path / "space.yaml"  # every trial trains past the hang point (step 3)
    space.write_text(SPACE.replace("train_steps: {low: 2, high: 4}", "train_steps: {low: 5, high: 8}"))
    args = ("search", tiny_experiment, "--baselines", "none", "--no-memory", "--space", space, "--trials", 5, "--study", "crash")
    storage, tracking = f"sqlite:///{tmp_path / 'autocompress.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    marker = tmp_path / "hanging-trial"
    # trials 0 and 1 run to the end; trial 2 stops after its third training step and waits to be killed
    proc = cli(*args, cwd=tmp_path, wait=False,
               hooks={"AUTOCOMPRESS_TEST_HANG_AT": 2, "AUTOCOMPRESS_TEST_MARKER": marker})
    victim = _wait_for_marker(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    s = optuna.load_study(study_name="crash", storage=storage)
    before = {t.number: t.values for t in s.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert victim == 2 and sorted(before) == [0, 1]
    assert s.trials[victim].state == optuna.trial.TrialState.RUNNING  # what kill -9 leaves behind
    victim_params = s.trials[victim].params

    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"trial {victim} died with its worker" in again.stderr
    s = optuna.load_study(study_name="crash", storage=storage)
    trials = s.trials
    for n, values in before.items():  # completed trials kept as they were
        assert trials[n].state == optuna.trial.TrialState.COMPLETE and trials[n].values == values
    assert trials[victim].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == victim]
    assert len(retry) == 1 and retry[0].params == victim_params and retry[0].state == optuna.trial.TrialState.COMPLETE
    _check_budget_held(s, 5, tracking)
    assert not counts(trials[victim])  # the killed trial does not use up the budget
    runs = _trial_runs(tracking, s)
    assert runs[victim].info.status == "FAILED"


@pytest.fixture
def search_of(tiny_experiment, tmp_path):
    from autocompress.config import Experiment
    from autocompress.search.space import parse_space
    from autocompress.search.study import SearchSettings, prepare_search
    from autocompress.session import engine_inputs

    exp = Experiment.from_file(tiny_experiment)
    prep = engine_inputs(exp)

    def make(**kw):
        base = dict(study="hb", space=parse_space(yaml_load(SPACE), "test-space"), trials=3, enqueue_starts=False,
                    storage=f"sqlite:///{tmp_path / 'optuna.db'}", out_dir=tmp_path / "out")
        return prepare_search(exp, SearchSettings(**{"baselines": "none", "memory": False, **base, **kw}), prepared=prep)

    return make


def yaml_load(text):
    import yaml

    return yaml.safe_load(text)


def test_a_silent_trial_of_another_host_is_failed_by_its_heartbeat_and_retried(search_of):
    from autocompress.search.recovery import used
    from autocompress.search.study import run_trials

    search = search_of(heartbeat_s=1, grace_s=2)
    study = search.study
    lost = study.ask()  # a trial a worker on another machine started, then went silent
    search.settings.space.suggest(lost, 3)
    lost.set_user_attr("host", "another-machine")
    lost.set_user_attr("pid", 1)
    study._storage.record_heartbeat(lost._trial_id)
    time.sleep(3)
    assert run_trials(search) == 3
    trials = study.trials
    assert trials[lost.number].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == lost.number]
    assert len(retry) == 1 and retry[0].params == trials[lost.number].params
    assert used(study, running=False) == 3 and not counts(trials[lost.number])


def test_a_live_trial_of_this_host_is_left_alone(search_of):
    """A RUNNING trial whose process is alive (another local worker) is neither failed nor counted twice."""
    from autocompress.search.recovery import DeadTrialHandler, claim, fail_dead_local_trials

    search = search_of()
    t = search.study.ask()
    claim(t)  # this very process: alive
    assert fail_dead_local_trials(search.study, DeadTrialHandler(search.tracker)) == []
    assert search.study.trials[t.number].state == optuna.trial.TrialState.RUNNING


def test_worker_refuses_another_experiment_or_a_foreign_study(tiny_experiment, tmp_path, search_of):
    search_of()  # study "hb" created by the search code, for experiment "tiny"
    other = tmp_path / "other.yaml"
    other.write_text(tiny_experiment.read_text().replace("name: tiny", "name: other"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = cli("worker", other, "--study", "hb", "--storage", storage, "--no-tracking", cwd=tmp_path)
    assert proc.returncode == 2 and "searches experiment 'tiny', not 'other'" in proc.stderr
    optuna.create_study(study_name="bare", storage=storage, directions=["maximize"] * 3)
    proc = cli("worker", tiny_experiment, "--study", "bare", "--storage", storage, cwd=tmp_path)
    assert proc.returncode == 2 and "was not created by `autocompress search`" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_an_old_trial_nobody_claimed_is_failed_and_retried(search_of):
    """A RUNNING trial without an owner (e.g. left by an older version) cannot block the budget."""
    from autocompress.search.recovery import DeadTrialHandler, fail_dead_local_trials

    search = search_of()
    t = search.study.ask()
    search.settings.space.suggest(t, 3)
    handler = DeadTrialHandler(search.tracker)
    assert fail_dead_local_trials(search.study, handler, grace_s=60) == []  # young: maybe being claimed now
    assert fail_dead_local_trials(search.study, handler, grace_s=0) == [t.number]
    trials = search.study.trials
    assert trials[t.number].state == optuna.trial.TrialState.FAIL
    assert [x.user_attrs.get("retry_of") for x in trials if x.state == optuna.trial.TrialState.WAITING] == [t.number]
