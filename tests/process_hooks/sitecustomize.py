"""Test-only hooks for search processes started by the tests (workers, a search to be killed).

A test puts this folder on PYTHONPATH of the processes it starts; Python imports this module at
start-up. Nothing happens unless one of these variables is set:

- AUTOCOMPRESS_TEST_RENDEZVOUS=N: each process, right after claiming its first trial, waits
  (at most AUTOCOMPRESS_TEST_RENDEZVOUS_S seconds, default 300) until trials claimed by N
  different processes are running at once. Parallel workers are then observable without
  depending on which process starts first or how long a trial takes.
- AUTOCOMPRESS_TEST_HANG_AT=K and AUTOCOMPRESS_TEST_MARKER=path: the first trial numbered K or
  higher stops in the middle of training (after its third step), writes its trial number to
  the marker file and sleeps until it is killed. A kill then lands mid-trial, always.
"""

import os
import time
from pathlib import Path


def _install() -> None:
    import autocompress.search.study as study_module

    rendezvous = int(os.environ.get("AUTOCOMPRESS_TEST_RENDEZVOUS", "0"))
    hang_at = os.environ.get("AUTOCOMPRESS_TEST_HANG_AT")
    if rendezvous:
        _wrap_claim(study_module, rendezvous, float(os.environ.get("AUTOCOMPRESS_TEST_RENDEZVOUS_S", "300")))
    if hang_at is not None:
        _wrap_run_recipe(study_module, int(hang_at), Path(os.environ["AUTOCOMPRESS_TEST_MARKER"]))


def _wrap_claim(study_module, n_processes: int, timeout_s: float) -> None:
    import optuna

    original, waited = study_module.claim, []

    def claim(trial) -> None:
        original(trial)
        if waited:
            return
        waited.append(True)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            running = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if len({t.user_attrs.get("pid") for t in running} - {None}) >= n_processes:
                return
            time.sleep(0.05)

    study_module.claim = claim


def _wrap_run_recipe(study_module, hang_at: int, marker: Path) -> None:
    original = study_module.run_recipe

    def run_recipe(inputs, recipe, folder, hooks=()):
        name = Path(folder).name  # trial-0007; the teacher's reference folder is not a trial
        number = int(name.rsplit("-", 1)[1]) if name.startswith("trial-") else -1
        if number < hang_at:
            return original(inputs, recipe, folder, hooks=hooks)

        def hang(step, _total, _loss, _model) -> None:
            if step == 3:
                marker.write_text(str(number))
                while True:
                    time.sleep(1)

        return original(inputs, recipe, folder, hooks=[*hooks, hang])

    study_module.run_recipe = run_recipe


if os.environ.get("AUTOCOMPRESS_TEST_RENDEZVOUS") or os.environ.get("AUTOCOMPRESS_TEST_HANG_AT"):
    _install()
