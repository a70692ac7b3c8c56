"""Stopping a real `autocompress search` process with a real signal: the running trial ends failed and is queued
again, the MLflow runs end KILLED, one line says how to resume, and the exit code is 128 + the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


def _running_trial(storage: str, study: str):
    """The RUNNING trial whose MLflow run exists, or None (also while the study is not made yet)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        found = optuna.load_study(study_name=study, storage=storage)
    except KeyError:
        return None
    for t in found.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if "mlflow_run_id" in t.user_attrs:
            return t
    return None


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_trial_stops_the_search_cleanly(tiny_experiment, tmp_path, sig, code):
    import optuna
    from mlflow.tracking import MlflowClient

    space = tmp_path / "space.yaml"
    space.write_text("depth: {low: 1, high: 2}\ntrain_steps: {low: 1000000, high: 1000000}\n"
                     "fixed: {batch_size: 4, lr: 1.0e-4}\n")  # a trial that trains until it is stopped
    storage, tracking = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "autocompress.cli", "search", str(tiny_experiment), "--space", str(space),
           "--study", "stop", "--trials", "3", "--storage", storage, "--tracking-uri", tracking,
           "--out", str(tmp_path / "out"), "--baselines", "none", "--no-memory", "--rung-steps", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, trial = time.monotonic() + 240, None
        while trial is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            trial = _running_trial(storage, "stop")
        assert trial is not None, proc.communicate(timeout=60)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err and "failed because of" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"stopped by {sig.name}: study 'stop' keeps its 0 finished trials ({storage}); "
                           "the trial in flight is queued again; resume with: autocompress search ")
    assert last.endswith("--rung-steps 0")
    assert f"trial {trial.number} was interrupted by {sig.name}; its configuration is queued again" in out + err

    study = optuna.load_study(study_name="stop", storage=storage)
    stopped = study.trials[trial.number]
    assert stopped.state == optuna.trial.TrialState.FAIL and "error" not in stopped.user_attrs  # uncounted
    assert stopped.user_attrs["interrupted"] == sig.name
    again = [t for t in study.trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(again) == 1 and again[0].state == optuna.trial.TrialState.WAITING
    assert again[0].system_attrs["fixed_params"] == stopped.params  # what it will run: the same configuration
    client = MlflowClient(tracking_uri=tracking)
    assert client.get_run(stopped.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert client.get_run(study.user_attrs["mlflow_parent_run_id"]).info.status == "KILLED"


def test_stop_on_signals_raises_stopped_and_restores_the_handlers():
    from autocompress.stopping import Stopped, stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as got, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at the next bytecode; never reached
    assert (got.value.name, got.value.exit_code) == ("SIGTERM", 143)
    assert signal.getsignal(signal.SIGTERM) is before
