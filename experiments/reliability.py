"""Fault drills: kill -9 at the worst moments, then check what was kept and what a later run trusts.

    python experiments/reliability.py [--kills 8]

Runs on a tiny randomly initialized teacher and a generated task (autocompress.testing) in a
temporary folder, through the real command line, so each drill takes seconds. Drills:
1. kill -9 of `autocompress search` in the middle of a trial, then the same command again;
2. kill -9 of one of two workers of `search --workers 2` in the middle of a trial;
3. kill -9 at random moments while the fine-tuned teacher is written to the cache;
4. kill -9 at random moments while a trial is exported.
Writes experiments/results/reliability.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from _common import log, provenance
from autocompress.engine.errors import ConfigError
from autocompress.export import verify
from autocompress.search.recovery import counts
from autocompress.search.storage import open_existing_study
from autocompress.testing import make_teacher_dir, write_experiment, write_task

HERE = Path(__file__).resolve().parent
SPACE = "depth: {low: 1, high: 3}\nbits: {choices: [32, 8]}\ntrain_steps: {low: 150, high: 200}\nfixed: {batch_size: 16}\n"


def cli(*args, cwd: Path, wait: bool = True):
    cmd = [sys.executable, "-m", "autocompress.cli", *map(str, args)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if wait:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def states(study) -> dict[str, int]:
    c = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    c["counted toward the budget"] = sum(counts(t) for t in study.get_trials(deepcopy=False))
    return dict(sorted(c.items()))


def wait_running(storage: str, name: str, proc, min_done: int = 2, timeout: float = 900):
    """Wait until the study has `min_done` complete trials and one running; returns that running trial."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("the search ended before it could be killed")
        try:
            trials = open_existing_study(name, storage).get_trials(deepcopy=False)
        except ConfigError:  # not created yet
            trials = []
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and "mlflow_run_id" in t.user_attrs]
        if done >= min_done and running:
            return running[0]
        time.sleep(0.1)
    raise RuntimeError("no running trial in time")


def tiny_setup(root: Path, task_model: bool = True) -> Path:
    teacher = make_teacher_dir(root / "teacher", task_model=task_model)
    exp = write_experiment(root, teacher, write_task(root / "data"))
    (root / "space.yaml").write_text(SPACE)
    return exp


def drill_search_kill(root: Path, budget: int = 5) -> dict:
    exp = tiny_setup(root)
    storage, tracking = f"sqlite:///{root / 'autocompress.db'}", f"sqlite:///{root / 'mlflow.db'}"
    args = ("search", exp, "--space", root / "space.yaml", "--trials", budget, "--study", "crash")
    proc = cli(*args, cwd=root, wait=False)
    victim = wait_running(storage, "crash", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = states(open_existing_study("crash", storage))
    again = cli(*args, cwd=root)
    study = open_existing_study("crash", storage)
    run = MlflowClient(tracking).get_run(study.trials[victim.number].user_attrs["mlflow_run_id"])
    retried = [t.number for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    return {"before": before, "after": states(study), "exit code of the second run": again.returncode,
            "killed trial": victim.number, "killed trial's state": study.trials[victim.number].state.name,
            "its MLflow run": run.info.status, "retried as": retried,
            "held": again.returncode == 0 and states(study).get("counted toward the budget") == budget
            and run.info.status == "FAILED" and len(retried) == 1 and "RUNNING" not in states(study)}


def drill_worker_kill(root: Path, budget: int = 6) -> dict:
    exp = tiny_setup(root)
    storage = f"sqlite:///{root / 'autocompress.db'}"
    proc = cli("search", exp, "--space", root / "space.yaml", "--trials", budget, "--study", "w", "--workers", 2,
               cwd=root, wait=False)
    victim = wait_running(storage, "w", proc)
    pid = int(victim.user_attrs["pid"])
    os.kill(pid, signal.SIGKILL)  # one worker; the search and the other worker go on
    code = proc.wait()
    study = open_existing_study("w", storage)
    retried = [t.number for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    after = states(study)
    return {"killed worker pid": pid, "killed trial": victim.number, "search exit code": code, "after": after,
            "retried as": retried,
            "held": code == 0 and after.get("counted toward the budget") == budget and "RUNNING" not in after}


def drill_kills_while_writing(root: Path, kills: int, what: str) -> dict:
    """Kill at random moments during teacher caching or export; every kill, check what a later run sees."""
    rng = random.Random(0)
    exp = tiny_setup(root, task_model=(what == "export"))
    results = Counter()
    if what == "export":
        assert cli("search", exp, "--space", root / "space.yaml", "--trials", 1, "--study", "e", "--no-tracking",
                   cwd=root).returncode == 0
    recipe = root / "recipe.yaml"
    recipe.write_text("bits: 8\ntrain_steps: 2\nbatch_size: 16\n")
    for _ in range(kills):
        if what == "teacher":
            args = ("compress", exp, "--recipe", recipe, "--out", root / "o")
            target = root / "cache" / "teachers"
        else:
            args = ("export", "--study", "e", "--pick", "0", "--out", root / "exported", "--force")
            target = root / "exported"
        # time a full run once, then kill somewhere inside it
        proc = cli(*args, cwd=root, wait=False)
        time.sleep(rng.uniform(0.5, 6.0))
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        results["runs finished before the kill" if finished else "runs killed"] += 1
        if what == "teacher":
            for d in (target.iterdir() if target.is_dir() else []):
                if d.name.startswith("."):
                    results["temporary folders left (never read)"] += 1
                elif (d / "meta.json").is_file() and (d / "model.safetensors").is_file():
                    results["complete cache entries"] += 1
                else:
                    results["incomplete entries a later run would trust"] += 1
            if not finished:
                import shutil

                shutil.rmtree(root / "cache", ignore_errors=True)  # start clean, so the next kill hits the write again
        else:
            if target.exists():
                try:
                    verify(target)
                    results["complete exports"] += 1
                except Exception:
                    results["corrupt exports that load"] += 1
    final = cli(*(("compress", exp, "--recipe", recipe, "--out", root / "o2") if what == "teacher" else
                  ("export", "--study", "e", "--pick", "0", "--out", root / "final")), cwd=root)
    results["a clean run afterwards exits 0"] = int(final.returncode == 0)
    bad = results.get("incomplete entries a later run would trust", 0) + results.get("corrupt exports that load", 0)
    return {**dict(results), "held": bad == 0 and final.returncode == 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=8)
    args = ap.parse_args()
    drills = {
        "kill -9 of a search mid-trial, then the same command": drill_search_kill,
        "kill -9 of one of two workers mid-trial": drill_worker_kill,
        "kill -9 while fine-tuning and caching the teacher": lambda r: drill_kills_while_writing(r, args.kills, "teacher"),
        "kill -9 while exporting a trial": lambda r: drill_kills_while_writing(r, args.kills, "export"),
    }
    out = {}
    for name, drill in drills.items():
        log(f"drill: {name}")
        with tempfile.TemporaryDirectory() as tmp:
            out[name] = drill(Path(tmp))
        log(f"drill: {name}: {out[name]}")
    lines = ["# Reliability: fault drills", ""] + provenance("reliability.py") + [
        "- tiny random teacher and generated task (`autocompress.testing`), real command line, sqlite stores", "",
        "| drill | what was seen | held |", "|---|---|---|"]
    for name, r in out.items():
        seen = "; ".join(f"{k}: {v}" for k, v in r.items() if k != "held")
        lines.append(f"| {name} | {seen} | {'yes' if r['held'] else '**no**'} |")
    lines += ["", "Held means: every completed trial kept, the killed trial failed (not left RUNNING) and its "
              "configuration run again, the budget counts trials that ran to an end, the killed trial's MLflow "
              "run closed as FAILED; for writes, no cache entry or export that a later run would trust is ever "
              "incomplete, and a clean run afterwards succeeds.",
              "Kill times are random (0.5-6 s after start); with a tiny model most kills land before the write "
              "(no temporary folder or entry seen after them), so these drills rarely hit the write window itself; `tests/test_io.py` checks the write helpers directly (a writer that dies leaves the old file, or no folder).", ""]
    (HERE / "results" / "reliability.md").write_text("\n".join(lines))
    (HERE / "results" / "reliability.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
