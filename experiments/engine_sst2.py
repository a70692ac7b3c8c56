"""Engine benchmark on SST-2: the fine-tuned teacher and a chain of compressed students, each
built, stored, reloaded and measured in one run; latency measured side by side at the end.

    python experiments/engine_sst2.py [--experiment experiments/sst2.yaml] [--rounds 5]

Resumable: every row is stored under <cache>/bench-engine/<row>-<recipe fingerprint>/ and reused
when it is already there. Writes experiments/results/engine-sst2.md and .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

import torch

from _common import cached_run, cpu_line, log
from autocompress.engine._io import digest
from autocompress.config import Experiment
from autocompress.engine.measure import interleaved_latency
from autocompress.engine.metrics import retention
from autocompress.engine.pipeline import latency_inputs
from autocompress.engine.runtimes import make_runtime
from autocompress.engine.storage import load_model
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs, read_metrics

HERE = Path(__file__).resolve().parent
L3 = (0, 2, 4)
STEPS = {"distill": 1500, "structured": 600, "sparse": 600, "qat": 400, "vocab": 200}

# (row name, recipe, the row it starts from)
ROWS: list[tuple[str, Recipe, str | None]] = [
    ("teacher fp32", Recipe(), None),
    ("3-layer distilled", Recipe(layers=L3, temperature=2.0, alpha=0.7, train_steps=STEPS["distill"], lr=1e-4), None),
    ("+ 40% heads/FFN removed", Recipe(layers=L3, heads_keep=0.6, ffn_keep=0.6, train_steps=STEPS["structured"],
                                        lr=5e-5), "3-layer distilled"),
    ("+ 50% unstructured", Recipe(layers=L3, heads_keep=0.6, ffn_keep=0.6, prune_ratio=0.5,
                                  train_steps=STEPS["sparse"], lr=5e-5), "+ 40% heads/FFN removed"),
    ("+ int8", Recipe(layers=L3, heads_keep=0.6, ffn_keep=0.6, prune_ratio=0.5, bits=8,
                      train_steps=STEPS["qat"], lr=2e-5), "+ 50% unstructured"),
    ("+ 4-bit (embeddings 8-bit)", Recipe(layers=L3, heads_keep=0.6, ffn_keep=0.6, prune_ratio=0.5, bits=4,
                                          embedding_bits=8, train_steps=STEPS["qat"], lr=5e-5),
     "+ 50% unstructured"),
    ("+ binary (embeddings 8-bit)", Recipe(layers=L3, heads_keep=0.6, ffn_keep=0.6, prune_ratio=0.5, bits=1,
                                           embedding_bits=8, train_steps=STEPS["qat"], lr=5e-5),
     "+ 50% unstructured"),
    ("+ int8 + pruned vocabulary", Recipe(layers=L3, heads_keep=0.6, ffn_keep=0.6, prune_ratio=0.5, bits=8,
                                          vocab_prune=True, train_steps=STEPS["vocab"], lr=2e-5), "+ int8"),
    ("3-layer, FFN rank 1/2 (SVD)", Recipe(layers=L3, rank_keep=0.5, train_steps=STEPS["structured"], lr=5e-5),
     "3-layer distilled"),
    ("+ int8 (FFN rank 1/2)", Recipe(layers=L3, rank_keep=0.5, bits=8, train_steps=STEPS["qat"], lr=2e-5),
     "3-layer, FFN rank 1/2 (SVD)"),
]


def build_rows(exp: Experiment):
    inputs, teacher = engine_inputs(exp, log)
    root = exp.cache / "bench-engine"
    folders: dict[str, Path] = {}
    for name, recipe, start in ROWS:
        # the folder name carries the row's whole chain, so a changed earlier row rebuilds later ones
        chain = digest(recipe.fingerprint(), folders[start].name if start else None)
        folder = root / f"row{len(folders)}-{chain}"
        folders[name] = folder
        if (folder / "metrics.json").is_file():
            log(f"{name}: reusing {folder}")
            continue
        # stored, reloaded and measured (accuracy on the target runtime) inside run_recipe
        m = cached_run(inputs, recipe, folder, name, start=load_model(folders[start]) if start else None)
        log(f"{name}: accuracy {m.accuracy:.4f}, {m.bytes:,} bytes")
    return inputs, teacher, folders


def side_by_side_latency(inputs, folders: dict[str, Path], rounds: int, repeats: int) -> dict[str, dict[int, float]]:
    """Every row on its own runtime, timed in interleaved rounds."""
    m = inputs.measure
    runs = {}
    for name, recipe, _ in ROWS:
        runs[name] = make_runtime(load_model(folders[name]), recipe.bits, inputs.runtime, folders[name] / "runtime",
                                  m.threads).run
    xs = {bs: latency_inputs(inputs.data.validation, bs, m.seq_len) for bs in m.batch_sizes}
    log(f"latency: {rounds} interleaved rounds")
    return interleaved_latency(runs, xs, rounds=rounds, repeats=repeats, warmup=m.warmup, threads=m.threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2.yaml"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results" / "engine-sst2"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every row's training steps (a shorter run)")
    args = ap.parse_args()
    if args.scale != 1.0:
        ROWS[:] = [(name, r.replace(train_steps=max(1, round(r.train_steps * args.scale))) if r.train_steps else r, s)
                   for name, r, s in ROWS]
    exp = Experiment.from_file(args.experiment)
    started = dt.datetime.now(dt.timezone.utc)
    inputs, teacher, folders = build_rows(exp)
    lat = side_by_side_latency(inputs, folders, args.rounds, args.repeats)
    metrics = {name: read_metrics(folders[name]) for name, _, _ in ROWS}
    t = metrics["teacher fp32"]
    rows = []
    for name, recipe, start in ROWS:
        m = metrics[name]
        rows.append({
            "row": name, "start_from": start, "recipe": recipe.to_dict(), "accuracy": m.accuracy, "f1": m.f1,
            "retention": retention(m.accuracy, t.accuracy), "test_accuracy": m.test_accuracy,
            "test_retention": retention(m.test_accuracy, t.test_accuracy), "bytes": m.bytes, "x_smaller": t.bytes / m.bytes,
            "latency_ms_b1": lat[name][1], "latency_ms_b32": lat[name][32],
            "x_faster_b1": lat["teacher fp32"][1] / lat[name][1], "x_faster_b32": lat["teacher fp32"][32] / lat[name][32],
            "params": m.params, "sparsity": m.sparsity, "runtime": m.runtime,
            "fast_kernel": m.fast_kernel, "runtime_note": m.runtime_note,
        })
    command = "python experiments/engine_sst2.py " + " ".join(sys.argv[1:])
    info = {
        "command": command.strip(), "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {cpu_line()}, {torch.get_num_threads()} torch threads available",
        "experiment": exp.name, "train_rows": len(inputs.data.train), "scale": args.scale,
        "teacher_validation_accuracy": teacher.metrics["validation"]["accuracy"],
        "teacher_test_accuracy": teacher.metrics["test"]["accuracy"], "threads": inputs.measure.threads,
        "seq_len": inputs.measure.seq_len, "rounds": args.rounds, "repeats": args.repeats,
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(info, rows))
    print(render(info, rows))


def render(info: dict, rows: list[dict]) -> str:
    lines = [
        "# Engine benchmark: SST-2, the compression chain step by step",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date']}; machine: {info['machine']}; torch {info['torch']}",
        f"- teacher: all-MiniLM-L6-v2 (packaged) fine-tuned on SST-2 (experiment `{info.get('experiment', 'sst2')}`"
        + (f", {info['train_rows']:,} training rows" if "train_rows" in info else "")
        + f"): validation accuracy {info['teacher_validation_accuracy']:.4f}, "
        f"test accuracy **{info['teacher_test_accuracy']:.4f}**",
        *([f"- training steps of every row scaled by {info['scale']} (`--scale`)"] if info.get("scale", 1.0) != 1.0 else []),
        f"- latency: median over {info['rounds']} interleaved rounds of the median of {info['repeats']} runs, "
        f"{info['threads']} threads, sequence length {info['seq_len']}, on each row's runtime",
        "- validation: the rows held out of training that a search chooses on; test: the dev file, only reported",
        "- bytes: everything running the model needs (weights, architecture, task, tokenizer), reloaded before measuring",
        "",
        "| row | validation | test | % of teacher (test) | bytes | x smaller | batch-1 ms | batch-32 ms | x faster (b1 / b32) | runtime |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rt = r["runtime"] + ("" if r["fast_kernel"] else " (no fast kernel)")
        lines.append(
            f"| {r['row']} | {r['accuracy']:.4f} | {r['test_accuracy']:.4f} | {100 * r['test_retention']:.1f}% | "
            f"{r['bytes']:,} | {r['x_smaller']:.1f} | "
            f"{r['latency_ms_b1']:.2f} | {r['latency_ms_b32']:.1f} | {r['x_faster_b1']:.2f} / {r['x_faster_b32']:.2f} | {rt} |"
        )
    lines += ["", "Notes", ""]
    notes = sorted({r["runtime_note"] for r in rows if not r["fast_kernel"]})
    lines += [f"- {n}." for n in notes]
    lines += ["- Unstructured sparsity shrinks bytes (1-bit occupancy map + nonzero values) but not latency: "
              "dense kernels do the same work.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
