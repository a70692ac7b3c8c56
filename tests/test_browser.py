"""The web UIs on a finished tiny search: `autocompress ui` (MLflow) and `autocompress dashboard`
(optuna-dashboard) run as real servers, read over HTTP and in headless Chromium (autocompress.browser).

Without Chromium (or the dashboard extra) these tests skip, unless AUTOCOMPRESS_REQUIRE_BROWSER=1
(set by .ci/run, which installs Chromium) makes that a failure. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import sys
import urllib.request
from types import SimpleNamespace

import pytest
import torch
from conftest import make_teacher_dir, write_experiment, write_task

from autocompress.browser import (
    TRIAL_FILTER,
    Browser,
    autocompress_command,
    find_chromium,
    free_port,
    mlflow_run_url,
    mlflow_runs_url,
    serve,
    ui_command,
)
from autocompress.cli import main
from autocompress.config import Experiment
from autocompress.search.run import run_search
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings
from autocompress.tracking import MlflowTracker

SPACE = {"depth": {"low": 1, "high": 3}, "bits": {"choices": [32, 8]}, "train_steps": {"low": 2, "high": 3},
         "fixed": {"batch_size": 16}}
STUDY = "tiny-ui"


def _missing(what: str, how: str) -> None:
    if os.environ.get("AUTOCOMPRESS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is not installed; {how}")
    pytest.skip(f"{what} is not installed")


def _need_dashboard() -> None:
    if importlib.util.find_spec("optuna_dashboard") is None:
        _missing("optuna-dashboard", "pip install -e .[dashboard] (.ci/setup does)")


def _need_chromium() -> None:
    if find_chromium() is None:
        _missing("Chromium", ".ci/run installs the `chromium` package")


@pytest.fixture
def browser():
    _need_chromium()
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-trial search of the tiny teacher, logged to MLflow: both stores are sqlite files."""
    folder = tmp_path_factory.mktemp("search")
    exp_file = write_experiment(folder, make_teacher_dir(folder / "teacher"), write_task(folder / "data"))
    exp = Experiment.from_file(exp_file)
    tracking, storage = f"sqlite:///{folder / 'mlflow.db'}", f"sqlite:///{folder / 'optuna.db'}"
    tracker = MlflowTracker(tracking, experiment=f"autocompress-{exp.name}", artifact_root=folder / "mlartifacts")
    settings = SearchSettings(baselines="none", memory=False, study=STUDY, space=parse_space(SPACE, "ui-test"), trials=2, seed=0, storage=storage,
                              out_dir=folder / "out")
    threads = torch.get_num_threads()
    try:
        run_search(exp, settings, tracker=tracker)
    finally:
        torch.set_num_threads(threads)
    runs = tracker.client.search_runs([tracker.experiment_id], TRIAL_FILTER)
    trials = {r.info.run_name: r.info.run_id for r in runs}
    assert sorted(trials) == ["trial-0000", "trial-0001"]
    return SimpleNamespace(folder=folder, tracking=tracking, storage=storage, experiment=f"autocompress-{exp.name}",
                           experiment_id=tracker.experiment_id, trials=trials)


def _port_is_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def _printed_url(log, label: str) -> str:
    found = re.search(rf"{label}: (http://\S+)", log.read_text())
    assert found, log.read_text()
    return found.group(1)


@pytest.fixture(scope="module")
def mlflow_ui(request, tmp_path_factory):
    """`autocompress ui` on the finished search's store, on a free port; stopped after this module."""
    _need_chromium()  # before the search is made for nothing
    finished = request.getfixturevalue("finished")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    with serve(ui_command(finished.tracking, port), f"{base}/health", timeout=180, log=log):
        yield SimpleNamespace(base=base, port=port, log=log)
    assert _port_is_closed(port), "the MLflow UI still answers after it was stopped"


@pytest.mark.browser
def test_mlflow_ui_shows_the_trials_and_their_metrics(mlflow_ui, finished, browser):
    assert _printed_url(mlflow_ui.log, "MLflow UI") == mlflow_ui.base
    # the runs table, filtered to the trials (by default they are folded under the search's run)
    browser.goto(mlflow_runs_url(mlflow_ui.base, finished.experiment_id, TRIAL_FILTER, order_by="metrics.`accuracy`"))
    wanted = [finished.experiment, *sorted(finished.trials), "accuracy"]
    text = browser.wait_for_text(wanted)
    missing = [n for n in wanted if n not in text]
    assert not missing, f"the runs page lacks {missing}; it shows:\n{text[:3000]}"
    # one trial's page: its metrics by name
    name = min(finished.trials)
    browser.goto(mlflow_run_url(mlflow_ui.base, finished.experiment_id, finished.trials[name]))
    wanted = [name, "accuracy", "latency_ms_b1", "bytes"]
    text = browser.wait_for_text(wanted)
    missing = [n for n in wanted if n not in text]
    assert not missing, f"the page of {name} lacks {missing}; it shows:\n{text[:3000]}"


@pytest.mark.browser
def test_the_page_autocompress_ui_prints_opens_on_the_runs_table(mlflow_ui, finished, browser):
    from autocompress.tracking import ui_url

    printed = ui_url(finished.experiment_id, port=mlflow_ui.port)
    assert printed in mlflow_ui.log.read_text()
    browser.goto(printed)
    text = browser.wait_for_text([STUDY, "matching runs"], timeout=60)
    where = browser.evaluate("location.hash")
    assert "/runs" in where and STUDY in text, (
        f"{printed} went to {where}, not to the runs table; it shows:\n{text[:1500]}")


def _dashboard(finished, port: int) -> list[str]:
    return autocompress_command("dashboard", "--study", STUDY, "--storage", finished.storage, "--port", str(port))


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.load(reply)


def test_dashboard_serves_the_study_over_http(finished, tmp_path):
    _need_dashboard()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dashboard.log"
    with serve(_dashboard(finished, port), f"{base}/api/studies", log=log):
        studies = _get_json(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == [STUDY]
        study_id = studies[0]["study_id"]
        assert _printed_url(log, "Optuna dashboard") == f"{base}/dashboard/studies/{study_id}"
        detail = _get_json(f"{base}/api/studies/{study_id}")
        assert detail["name"] == STUDY and len(detail["trials"]) == 2
    assert _port_is_closed(port)


@pytest.mark.browser
def test_dashboard_page_shows_the_study(finished, browser, tmp_path):
    _need_dashboard()
    port = free_port()
    log = tmp_path / "dashboard.log"
    with serve(_dashboard(finished, port), f"http://127.0.0.1:{port}/api/studies", log=log):
        url = _printed_url(log, "Optuna dashboard")
        browser.goto(url)
        text = browser.wait_for_text([STUDY, "Pareto Front"])  # the study's page, with its plots
        if not (STUDY in text and "Pareto Front" in text):
            browser.screenshot(tmp_path / "dashboard.png")
            pytest.fail(f"{url} (now at {browser.evaluate('location.href')}) shows:\n{text[:2000]}\n"
                        f"server output:\n{log.read_text()[-2000:]}\nscreenshot: {tmp_path / 'dashboard.png'}")


def _run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["autocompress", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


def test_dashboard_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # importing it now fails
    code, _, err = _run_cli(monkeypatch, capsys, "dashboard", "--study", "s")
    assert code == 2 and err == "error: install the dashboard extra: pip install -e .[dashboard]\n"


def test_dashboard_of_an_unknown_study_is_one_line(finished, monkeypatch, capsys):
    _need_dashboard()
    code, _, err = _run_cli(monkeypatch, capsys, "dashboard", "--study", "nope", "--storage", finished.storage)
    assert code == 2 and err.startswith("error: no study named 'nope'") and err.count("\n") == 1, err


def test_dashboard_on_a_busy_port_is_one_line(finished, monkeypatch, capsys):
    _need_dashboard()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = _run_cli(monkeypatch, capsys, "dashboard", "--study", STUDY, "--storage", finished.storage,
                                "--port", str(port))
    assert code == 2 and err.startswith(f"error: cannot serve on 127.0.0.1:{port}") and err.count("\n") == 1, err
