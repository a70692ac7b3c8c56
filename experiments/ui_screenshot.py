"""Screenshot of a search's runs in the MLflow UI, for the README (docs/mlflow-runs.png).

    python experiments/ui_screenshot.py
    python experiments/ui_screenshot.py --tracking-uri sqlite:///mlflow.db --experiment autocompress-sst2-quick

With no --tracking-uri, a tiny search (a randomly initialized teacher on a generated task, from
autocompress.testing) runs first through the real command line in a temporary folder. Then
`autocompress ui` serves the store, headless Chromium opens the experiment's runs table with each
search's run expanded (its trials listed below it) and a few metric columns shown, and the page is
saved as a PNG. Those view settings live in the browser only; a sqlite store is copied to a
temporary folder first, so the original is only read. Needs Chromium (the `chromium` package).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import log

from autocompress.browser import (
    Browser,
    BrowserError,
    autocompress_command,
    find_chromium,
    free_port,
    mlflow_view_presets,
    serve,
    ui_command,
)
from autocompress.tracking import ui_url

ROOT = Path(__file__).resolve().parent.parent
SPACE = ("depth: {low: 1, high: 3}\nbits: {choices: [32, 8]}\ntrain_steps: {low: 20, high: 40}\n"
         "fixed: {batch_size: 16}\n")
METRICS = ("accuracy", "retention", "bytes", "latency_ms_b1")  # table columns, when the trials logged them
PARAMS = ("bits",)


def tiny_search(folder: Path, trials: int) -> tuple[str, str]:
    """A finished tiny search in `folder`, run by `autocompress search`; its store and experiment."""
    from autocompress.testing import make_teacher_dir, write_experiment, write_task

    exp = write_experiment(folder, make_teacher_dir(folder / "teacher"), write_task(folder / "data"))
    (folder / "space.yaml").write_text(SPACE)
    log(f"ui_screenshot: a tiny search of {trials} trials in {folder}")
    done = subprocess.run(autocompress_command("search", str(exp), "--space", "space.yaml", "--trials", str(trials),
                                               "--study", "tiny-demo"),
                          cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: the tiny search failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return f"sqlite:///{folder / 'mlflow.db'}", "autocompress-tiny"


def private_copy(uri: str, folder: Path) -> str:
    """A sqlite store copied into `folder` (so that the UI cannot change the original); others as given."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    source = Path(uri[len(prefix):].split("?")[0])
    if not source.is_file():
        raise SystemExit(f"error: no sqlite store at {source}")
    shutil.copy2(source, folder / "mlflow.db")
    return f"{prefix}{folder / 'mlflow.db'}"


def view(uri: str, experiment: str) -> tuple[str, list[str], list[str], list[str]]:
    """The experiment's id, its searches' run ids, the names of their trials, and the columns to show."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = ", ".join(e.name for e in client.search_experiments())
        raise SystemExit(f"error: no experiment '{experiment}' in {uri} (there: {names})")
    eid = found.experiment_id
    searches = client.search_runs([eid], "tags.`autocompress.kind` = 'search'", order_by=["attributes.start_time DESC"])
    trials = client.search_runs([eid], "tags.`autocompress.kind` = 'trial'", max_results=1000)
    if not searches or not trials:
        raise SystemExit(f"error: experiment '{experiment}' holds no finished search with trials")
    logged_metrics = {k for t in trials for k in t.data.metrics}
    logged_params = {k for t in trials for k in t.data.params}
    columns = ([f"metrics.`{m}`" for m in METRICS if m in logged_metrics]
               + [f"params.`{p}`" for p in PARAMS if p in logged_params])
    newest = searches[0].info.run_id  # the newest search, expanded; its trials are the ones to wait for
    names = sorted(t.info.run_name for t in trials if t.data.tags.get("mlflow.parentRunId") == newest)
    return eid, [newest], names, columns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", help="an MLflow store holding a finished search (default: run a tiny one)")
    ap.add_argument("--experiment", help="its MLflow experiment, e.g. autocompress-sst2-quick")
    ap.add_argument("--trials", type=int, default=6, help="trials of the tiny search")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "mlflow-runs.png")
    ap.add_argument("--size", default="1400x720", help="window size, WIDTHxHEIGHT")
    args = ap.parse_args()
    if find_chromium() is None:
        raise SystemExit("error: no Chromium found: install the `chromium` package (or set AUTOCOMPRESS_CHROMIUM)")
    if args.tracking_uri and not args.experiment:
        raise SystemExit("error: give --experiment with --tracking-uri")
    width, height = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="ui-screenshot-") as tmp:
        folder = Path(tmp)
        if args.tracking_uri:
            uri, experiment = private_copy(args.tracking_uri, folder), args.experiment
        else:
            uri, experiment = tiny_search(folder, args.trials)
        eid, expanded, names, columns = view(uri, experiment)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log(f"ui_screenshot: serving {uri} on {base}")
        with serve(ui_command(uri, port), f"{base}/health", timeout=180, log=folder / "ui.log"), \
                Browser(width=width, height=height) as browser:
            browser.set_local_storage(f"{base}/health", mlflow_view_presets(eid, expanded, columns))
            browser.goto(ui_url(eid, port=port))  # the page `autocompress ui` points to
            wanted = [experiment, *names[:3], *(c.split("`")[1] for c in columns[:1])]
            text = browser.wait_for_text(wanted, timeout=120)
            missing = [w for w in wanted if w not in text]
            if missing:
                raise BrowserError(f"the runs page never showed {missing}; it shows:\n{text[:2000]}")
            browser.screenshot(args.out)
    try:
        shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.out
    print(f"written: {shown}")


if __name__ == "__main__":
    sys.exit(main())
