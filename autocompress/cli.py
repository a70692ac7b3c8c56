"""The `autocompress` command line: parse, build the config, call one library function, render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .engine.metrics import Metrics
from .engine.errors import AutocompressError, ConfigError
from .progress import Console
from .stopping import Stopped, stop_on_signals
from .search.storage import DEFAULT_STORAGE
from .tracking import DEFAULT_TRACKING_URI, UI_HOST, UI_PORT, search_url, ui_root

app = typer.Typer(add_completion=False, no_args_is_help=True, help="AutoML compression for transformer classifiers.")


@app.callback()
def _root() -> None:
    """AutoML compression for transformer classifiers: distill, prune, quantize, measure."""
    from .engine.quiet import quiet_third_party

    quiet_third_party()


# progress lines on stderr; long work (teacher, trials) as live bars when stderr is a terminal
_log = Console()


def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def render_metrics(m: Metrics) -> str:
    rows = [
        (f"validation {m.metric}", f"{m.score:.4f}"
         + (f"  ({m.retention:.1%} of teacher)" if m.retention is not None else "")),
        (f"test {m.metric}", "not measured" if m.test_score is None else f"{m.test_score:.4f}  (reported only)"),
        ("validation " + " / ".join(m.validation), " / ".join(f"{v:.4f}" for v in m.validation.values())),
        ("bytes", f"{m.bytes:,} ({_fmt_bytes(m.bytes)}; weights file {_fmt_bytes(m.weight_bytes)})"),
    ]
    rows += [(f"latency batch {bs}", f"{ms:.2f} ms") for bs, ms in m.latency_ms.items()]
    rows += [
        ("runtime", f"{m.runtime} ({m.runtime_note})"),
        ("shape", f"{m.layers} layers, {m.heads} heads, {m.ffn} FFN neurons, vocab {m.vocab}"),
        ("parameters", f"{m.params:,}"),
        ("sparsity", f"{m.sparsity:.1%}"),
        ("bits", f"{m.bits} (embeddings {m.embedding_bits})"),
    ]
    if m.elastic_id:
        rows.append(("started from", f"elastic network {m.elastic_id}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@app.command()
def compress(
    experiment: Annotated[Path, typer.Argument(help="experiment YAML (task, teacher, measurement)")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="recipe YAML/JSON: the candidate to build")],
    out: Annotated[Path | None, typer.Option(help="folder for the compressed model (default out/<name>-<recipe>)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the measurements here")] = None,
    device: DeviceOpt = None,
) -> None:
    """Build one compressed candidate from a recipe, store it, reload it and measure it."""
    from .config import Experiment
    from .engine.recipe import Recipe
    from .session import elastic_note, engine_inputs, run_recipe

    exp = Experiment.from_file(experiment).on_device(device)
    rec = Recipe.from_file(recipe)
    folder = out or Path("out") / f"{exp.name}-{rec.fingerprint()}"
    inputs, _teacher = engine_inputs(exp, _log, elastic=rec.elastic, source=str(recipe))
    note = elastic_note(exp, inputs, rec)
    if note:
        _log(note)
    _log(f"compress: building {recipe} into {folder}")
    result = run_recipe(inputs, rec, folder, str(recipe))
    print(render_metrics(result.metrics))
    print(f"written: {folder}/metrics.json")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.metrics.to_dict(), indent=2, sort_keys=True) + "\n")
        print(f"written: {json_out}")


DeviceOpt = Annotated[str | None, typer.Option("--device", help="where training runs: auto, cpu, cuda or cuda:N (default: the experiment's train.device, auto); models are measured on the CPU whatever it is")]
StudyOpt = Annotated[str | None, typer.Option("--study", help="study name (default: <experiment>-<space>); resumes if it exists")]
StorageOpt = Annotated[str, typer.Option("--storage", help="Optuna storage URL")]
TrackingOpt = Annotated[str, typer.Option("--tracking-uri", help="MLflow tracking URI (a server, or sqlite)")]


@app.command()
def search(
    experiment: Annotated[Path, typer.Argument(help="experiment YAML")],
    space: Annotated[Path, typer.Option("--space", help="search space YAML, or a shipped space's name")] = Path("default"),
    trials: Annotated[int, typer.Option("--trials", min=1, help="run until the study holds this many finished trials")] = 20,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="stop starting trials after this many seconds")] = None,
    study: StudyOpt = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    sampler: Annotated[str, typer.Option("--sampler", help="tpe (default), nsga2 or random")] = "tpe",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_size_mb: Annotated[float | None, typer.Option("--max-size-mb", help="budget: bytes on disk")] = None,
    max_latency_ms: Annotated[float | None, typer.Option("--max-latency-ms", help="budget: batch-1 latency")] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", help="budget: the task's metric on validation rows")] = None,
    min_accuracy: Annotated[float | None, typer.Option("--min-accuracy", help="--min-score for a task scored in accuracy")] = None,
    min_retention: Annotated[float | None, typer.Option("--min-retention", help="budget: fraction of the teacher's score")] = None,
    tracking_uri: TrackingOpt = DEFAULT_TRACKING_URI,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="do not log to MLflow")] = False,
    out: Annotated[Path, typer.Option("--out", help="folder for trial artifacts and reports")] = Path("out"),
    workers: Annotated[int, typer.Option("--workers", min=1, help="local worker processes sharing the study")] = 1,
    rung_steps: Annotated[int, typer.Option("--rung-steps", min=0, help="first rung of multi-fidelity stopping, in training steps (0: off)")] = 150,
    eta: Annotated[int, typer.Option("--eta", min=0, help="rungs at rung-steps * eta^k; a trial keeps going in the top 1/eta of trials no costlier")] = 3,
    baselines: Annotated[str, typer.Option("--baselines", help="the teacher on each installed runtime, no search, measured before the trials: all, none, or names (onnxruntime-int8, openvino-int8, openvino-bf16, torch-int8)")] = "all",
    beat_baselines: Annotated[bool, typer.Option("--beat-baselines", help="budget: fewer bytes than the smallest baseline, batch-1 latency under --latency-margin x the fastest's, validation score >= the best's")] = False,
    latency_margin: Annotated[float, typer.Option("--latency-margin", help="with --beat-baselines: the latency limit as a fraction of the fastest baseline's")] = 0.9,
    max_memory_mb: Annotated[float | None, typer.Option("--max-memory-mb", help="budget: peak resident memory the model adds to a fresh process once loaded and run (measured per trial)")] = None,
    max_latency_ratio: Annotated[float | None, typer.Option("--max-latency-ratio", help="budget: batch-1 latency as a fraction of the fp32 teacher's, timed beside it in each trial")] = None,
    confirm_rounds: Annotated[int, typer.Option("--confirm-rounds", min=1, help="rounds timing the teacher, the baselines and the front side by side for the report and the pick")] = 5,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="the report skips measuring each model's memory in a fresh process")] = False,
    device: DeviceOpt = None,
) -> None:
    """Search the compression space with Optuna under a budget; log every trial to MLflow."""
    from .config import Experiment
    from .search.baselines import select as select_baselines
    from .search.budget import Budget
    from .search.run import run_search
    from .search.space import load_space
    from .search.study import SAMPLERS, SearchSettings
    from .tracking import open_tracker

    exp = Experiment.from_file(experiment).on_device(device)
    sp = load_space(space)
    if sampler not in SAMPLERS:
        raise typer.BadParameter(f"use one of {', '.join(SAMPLERS)}", param_hint="--sampler")
    if min_accuracy is not None:
        if exp.task.metric != "accuracy":
            raise ConfigError(f"--min-accuracy: this task is scored in {exp.task.metric} (task.metric); use --min-score")
        if min_score is not None:
            raise ConfigError("give --min-score or --min-accuracy, not both")
        min_score = min_accuracy
    budget = Budget(
        max_bytes=int(max_size_mb * 1e6) if max_size_mb is not None else None,
        max_latency_ms=max_latency_ms, min_score=min_score, min_retention=min_retention,
        max_latency_ratio=max_latency_ratio,
        max_memory_bytes=int(max_memory_mb * 1e6) if max_memory_mb is not None else None,
    )
    select_baselines(baselines)  # an unknown name is one line before anything runs
    settings = SearchSettings(study=study or f"{exp.name}-{sp.name}", space=sp, budget=budget, trials=trials,
                              timeout=timeout, storage=storage, sampler=sampler, seed=seed, out_dir=out,
                              rung_steps=rung_steps, eta=eta, baselines=baselines, beat_baselines=beat_baselines,
                              latency_margin=latency_margin, confirm_rounds=confirm_rounds, memory=not no_memory)
    tracker = open_tracker(tracking_uri, no_tracking, exp.name)
    with stop_on_signals():
        done = run_search(exp, settings, tracker=tracker, workers=workers, experiment_file=experiment, log=_log)
    print(done.report.markdown())
    print(f"written: {done.report_md} and {done.plot_png}")
    if not no_tracking:
        print(f"inspect the trials: autocompress ui --tracking-uri {tracking_uri}")
        print(f"  then open this search's runs: {search_url(tracker)}")


@app.command()
def worker(
    experiment: Annotated[Path, typer.Argument(help="the experiment YAML the study was started with")],
    study: Annotated[str, typer.Option("--study", help="name of a study started by `autocompress search`")],
    storage: StorageOpt = DEFAULT_STORAGE,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow store (default: the search's)")] = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="do not log to MLflow")] = False,
    out: Annotated[Path, typer.Option("--out", help="folder for this worker's trial artifacts")] = Path("out"),
    seed: Annotated[int | None, typer.Option("--seed", help="this worker's sampler seed (default: from its pid)")] = None,
    trials: Annotated[int | None, typer.Option("--trials", help="the study's trial budget (default: the search's)")] = None,
    name: Annotated[str, typer.Option("--name", help="prefix of this worker's progress lines")] = "worker",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch threads (training and timing)")] = None,
    device: DeviceOpt = None,
) -> None:
    """Join a running search's study from any machine and run trials until its budget is used."""
    from .config import Experiment
    from .search.run import join_search

    exp = Experiment.from_file(experiment).on_device(device)
    with stop_on_signals():
        ran = join_search(exp, study, storage, out_dir=out, seed=seed, trials=trials, threads=threads,
                          tracking_uri=tracking_uri, no_tracking=no_tracking, who=name,
                          log=Console(bars=False))  # plain lines: a worker's output usually ends up in a log
    _log(f"{name}: done, ran {ran} trials")


@app.command()
def report(
    study: Annotated[str, typer.Option("--study", help="study name")],
    storage: StorageOpt = DEFAULT_STORAGE,
    out: Annotated[Path, typer.Option("--out", help="folder for report.md and pareto.png")] = Path("out"),
    no_remeasure: Annotated[bool, typer.Option(
        "--no-remeasure", help="skip timing the teacher and the front side by side (then no speed ratios)")] = False,
    confirm_rounds: Annotated[int | None, typer.Option("--confirm-rounds", min=1, help="side-by-side rounds (default: the search's)")] = None,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="skip measuring each model's memory in a fresh process")] = False,
) -> None:
    """Print the Pareto table, hypervolume, recommended pick and knee of a study; write the plot."""
    from .search.publish import refresh_marks
    from .search.report import write_report
    from .search.storage import open_existing_study

    if not no_remeasure:
        _log("report: timing the teacher, the baselines and the front side by side, the order rotating every round "
             "(--no-remeasure skips this)")
    found = open_existing_study(study, storage)
    rep, md, png = write_report(found, out / study, remeasure=not no_remeasure, confirm_rounds=confirm_rounds,
                                memory=not no_memory)
    print(rep.markdown())
    print(f"written: {md} and {png}")
    refresh_marks(found, rep, _log)  # the front's tags and the search run's description follow this report


@app.command()
def ui(
    tracking_uri: TrackingOpt = DEFAULT_TRACKING_URI,
    host: Annotated[str, typer.Option("--host", help="interface to bind (default: this machine only)")] = UI_HOST,
    port: Annotated[int, typer.Option("--port")] = UI_PORT,
    study: Annotated[str | None, typer.Option("--study", help="print this search's pages (default: every autocompress experiment's)")] = None,
) -> None:
    """Start the MLflow UI on the tracking store the searches log to; print where each search's runs are."""
    import os
    import shutil
    import subprocess

    from .tracking import ui_pages

    pages = ui_pages(tracking_uri, host, port, study)
    exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    print(f"MLflow UI: {ui_root(host, port)}  (store: {tracking_uri}; Ctrl-C to stop)")
    for page in pages:
        print(f"  {page.label}: {page.url}")
    if not pages:
        print("  no autocompress search has logged to this store yet")
    sys.stdout.flush()  # before the MLflow UI replaces this process
    cmd = [exe, "ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port), "--workers", "1"]
    if hasattr(os, "execv"):  # become the MLflow UI: signals (Ctrl-C, SIGTERM) reach it and its server
        os.execv(exe, cmd)
    try:
        raise SystemExit(subprocess.call(cmd))
    except KeyboardInterrupt:
        raise SystemExit(0) from None


@app.command()
def dashboard(
    study: Annotated[str, typer.Option("--study", help="name of a study started by `autocompress search`")],
    storage: StorageOpt = DEFAULT_STORAGE,
    host: Annotated[str, typer.Option("--host", help="interface to bind (default: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
) -> None:
    """Serve optuna-dashboard on a study's storage (needs the `dashboard` extra)."""
    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError("install the dashboard extra: pip install -e .[dashboard]") from None
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from .search.storage import open_existing_study, rdb_storage

    class Server(ThreadingMixIn, WSGIServer):  # a thread per connection, as optuna-dashboard's own command:
        daemon_threads = True  # an idle browser connection never holds up the others

    class Handler(WSGIRequestHandler):
        def log_message(self, *args) -> None:  # no line per request
            pass

    open_existing_study(study, storage)  # a missing study or database: one line, exit 2
    served = rdb_storage(storage)
    study_id = served.get_study_id_from_name(study)
    try:
        httpd = make_server(host, port, optuna_dashboard.wsgi(served), server_class=Server, handler_class=Handler)
    except OSError as err:
        raise ConfigError(f"cannot serve on {host}:{port} ({err.strerror or err}); choose another --port") from None
    print(f"Optuna dashboard: {ui_root(host, port)}/dashboard/studies/{study_id}  "
          f"(study '{study}', storage: {storage}; Ctrl-C to stop)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


@app.command()
def export(
    study: Annotated[str, typer.Option("--study", help="study name")],
    out: Annotated[Path, typer.Option("--out", help="folder to create")],
    pick: Annotated[str, typer.Option("--pick", help="best (most accurate within budget), knee, or a trial number")] = "best",
    storage: StorageOpt = DEFAULT_STORAGE,
    fmt: Annotated[str | None, typer.Option("--format", help="a runtime's format (torch, onnx, onnx-static, openvino); default: the runtime the trial was measured on")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing --out folder")] = False,
    register: Annotated[str | None, typer.Option("--register", help="also register in the MLflow Model Registry")] = None,
    tracking_uri: TrackingOpt = DEFAULT_TRACKING_URI,
) -> None:
    """Export a trial's compressed model to a self-contained folder (and log it to its MLflow run)."""
    from .engine.runtimes import export_formats
    from .search.publish import export_pick, log_export

    if fmt is not None and fmt not in export_formats():  # each registered runtime ships its own format
        raise ConfigError(f"--format {fmt}: use one of {', '.join(export_formats())}")
    exported = export_pick(study, storage, pick, out, fmt=fmt, force=force)
    print(f"exported trial {exported.trial} of study '{study}' to {exported.folder}")
    script = exported.folder / "predict.py"
    if script.is_file():  # the runtime's own files, and a script that runs them without torch
        print(f"run it without torch: python {script} \"a text\" (see its README.md)")
    version = log_export(exported, tracking_uri, register)
    if exported.run_id:
        print(f"logged to MLflow run {exported.run_id}")
    if version is not None:
        print(f"registered as '{register}' version {version}")


@app.command()
def predict(
    folder: Annotated[Path, typer.Argument(help="an exported model folder")],
    texts: Annotated[list[str], typer.Argument(help="sentences to classify, score, tag or embed")],
    as_json: Annotated[bool, typer.Option("--json", help="print every text's full answer as JSON")] = False,
) -> None:
    """Run an exported model on sentences (no teacher, study or MLflow needed): a classifier's label and its
    probability, a regression's score, a tagger's entities, or an embedding."""
    from .export import load_compressed
    from .predictions import line

    model = load_compressed(folder)
    rows = model.predictions(texts)
    if as_json:
        print(json.dumps([{"text": t, **r} for t, r in zip(texts, rows)], ensure_ascii=False))
        return
    for text, row in zip(texts, rows):
        print(line(model.task, row, text))


@app.command()
def data(
    experiment: Annotated[Path | None, typer.Argument(
        help="an experiment YAML whose data to check (none: show how to point an experiment at your data)")] = None,
) -> None:
    """Show the task: blocks for CSV, JSON lines, parquet and hub data, or check an experiment's data."""
    from .datacheck import check_data, examples

    if experiment is None:
        print(examples())
        return
    from .config import Experiment

    print(check_data(Experiment.from_file(experiment), _log, str(experiment)).render())


def main() -> None:
    """Entry point: library errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except AutocompressError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Stopped as stop:  # SIGINT or SIGTERM during a search or a worker, cleaned up on the way here
        import shlex

        kept = f"{stop.resume}; " if stop.resume else ""
        command = shlex.join(["autocompress", *sys.argv[1:]])
        print(f"stopped by {stop.name}: {kept}the trial in flight is queued again; resume with: {command}",
              file=sys.stderr)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # usage errors (a missing option, a bad value) from click or typer's own copy of it
        kinds = {c.__name__ for c in type(err).__mro__}
        if "ClickException" in kinds:
            message = (err.format_message() if hasattr(err, "format_message") else str(err)).rstrip(".")
            print(f"error: {message}; see `autocompress --help`", file=sys.stderr)
            sys.exit(2)
        if "Abort" in kinds:
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
