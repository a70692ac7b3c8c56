"""Quantization-aware against post-training int8 for the quick space's students (SST-2 quick sample).

    python experiments/qat_vs_ptq.py [--steps 250]

1. Seconds per training step of a 5-layer student of the teacher (layers 0, 1, 3, 4, 5), median of steps
   11-40 of a 40-step run each: int8 fake-quant (qat), float (qat: false), float under bf16 autocast.
2. The same student trained --steps steps each way and stored in int8 on OpenVINO (NNCF static int8):
   validation accuracy (what a search chooses on), test accuracy (only reported), training seconds.
Writes experiments/results/qat-vs-ptq.md and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import log, provenance

from autocompress.config import Experiment
from autocompress.engine.build import build_student
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs, run_recipe

HERE = Path(__file__).resolve().parent
LAYERS = [0, 1, 3, 4, 5]
WAYS = {"quantization-aware (qat)": dict(qat=True, bf16=False), "post-training (qat: false)": dict(qat=False, bf16=False),
        "post-training, bf16 training": dict(qat=False, bf16=True)}


def step_seconds(inputs, **kw) -> float:
    stamps: list[float] = []
    recipe = Recipe(layers=LAYERS, bits=8, train_steps=40, lr=1e-4, batch_size=32, runtime="openvino", **kw)
    build_student(inputs, recipe, None, [lambda step, total, loss, model: stamps.append(time.perf_counter())])
    return statistics.median(b - a for a, b in zip(stamps[10:], stamps[11:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=250)
    args = ap.parse_args()
    exp = Experiment.from_file(HERE / "sst2-quick.yaml")
    inputs, _teacher = engine_inputs(exp, log)
    rows = {}
    for name, kw in WAYS.items():
        log(f"{name}: step time")
        sec = step_seconds(inputs, **kw)
        log(f"{name}: {args.steps} steps")
        recipe = Recipe(layers=LAYERS, bits=8, train_steps=args.steps, lr=1e-4, batch_size=32, runtime="openvino", **kw)
        m = run_recipe(inputs, recipe, exp.cache / "qat-vs-ptq" / name.split()[0].replace(",", "")
                       / ("bf16" if kw["bf16"] else "fp32")).metrics
        rows[name] = {"seconds_per_step": sec, "validation": m.score, "test": m.test_score,
                      "train_seconds": m.train_seconds, "bytes": m.bytes, "runtime": m.runtime}
    lines = ["# Quantization-aware against post-training int8 (quick-space student)", ""]
    lines += provenance("qat_vs_ptq.py", exp.measure.threads)
    lines += [f"- student: teacher layers {LAYERS} of the `sst2-quick.yaml` teacher, distilled {args.steps} steps "
              "(batch 32, lr 1e-4, T 2, alpha 0.7), stored in int8 and run on OpenVINO (NNCF static int8)",
              "- validation: 872 rows held out from training (chooses); test: SST-2's dev file (only reported)", "",
              "| training | s / step | validation accuracy | test accuracy | training s | bytes |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {r['seconds_per_step']:.3f} | {r['validation']:.4f} | {r['test']:.4f} | "
              f"{r['train_seconds']:.0f} | {r['bytes']:,} |" for n, r in rows.items()]
    (HERE / "results" / "qat-vs-ptq.md").write_text("\n".join(lines) + "\n")
    (HERE / "results" / "qat-vs-ptq.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
