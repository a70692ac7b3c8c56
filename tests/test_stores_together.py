"""Processes started at the same moment on fresh stores all run: the MLflow tracking store and the Optuna study
are created once, under a lock, whoever comes first (issue: one of two searches died with `duplicate column
name: step` while MLflow's schema was created twice)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from autocompress.store_lock import lock_path

N = 4
OPEN_BOTH = """
import sys, time
from pathlib import Path
from autocompress.search.storage import open_study
from autocompress.tracking import open_tracker
import mlflow, optuna  # imported before the start line, so that the processes open the stores together
folder = Path(sys.argv[1])
(folder / f"ready-{sys.argv[2]}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
tracker = open_tracker(f"sqlite:///{folder}/mlflow.db", False, "together")
study = open_study("together", f"sqlite:///{folder}/optuna.db")
print(tracker.experiment_id, study.study_name)
"""


def test_workers_started_together_on_fresh_stores_all_run(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_BOTH, str(tmp_path), str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(N)]
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("ready-*"))) < N and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0] * N, [err[-2000:] for _, err in results]
    outputs = {out.strip() for out, _ in results}
    assert len(outputs) == 1  # one MLflow experiment id and one study, seen by all
    assert outputs.pop().endswith(" together")


def test_a_store_has_one_lock_whatever_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lock_path("sqlite:///mlflow.db") == lock_path(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert lock_path("sqlite:///mlflow.db") != lock_path("sqlite:///optuna.db")
    assert lock_path("postgresql://u@h/db") == lock_path("postgresql://u@h/db")
    assert Path(lock_path("sqlite:///mlflow.db")).parent != tmp_path  # nothing left beside the user's files
