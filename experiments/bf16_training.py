"""Does training under bfloat16 autocast pay on this CPU? The same student recipe trained in fp32
and in bf16 autocast, in alternation, on SST-2 with the benchmark's teacher: training seconds per
step and the validation / test accuracy each reaches.

    python experiments/bf16_training.py [--steps 600] [--repeats 2]

Writes experiments/results/bf16-training.md and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from _common import log, provenance

from autocompress.config import Experiment
from autocompress.recipe import Recipe
from autocompress.session import engine_inputs, run_recipe

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2.yaml"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=2, help="fp32 / bf16 pairs, alternating which goes first")
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    inputs, _teacher = engine_inputs(exp, log)
    base = {"layers": (0, 2, 4), "vocab_prune": True, "bits": 8, "runtime": "openvino", "train_steps": args.steps, "lr": 1e-4,
                "temperature": 2.0, "alpha": 0.7, "hidden_mse": 1.0}
    runs: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")
            for name in order:
                log(f"{name}: repeat {r + 1}/{args.repeats}, {args.steps} steps")
                m = run_recipe(inputs, Recipe(**base, bf16=name == "bf16", seed=r), Path(tmp) / f"{name}-{r}").metrics
                runs[name].append({"seed": r, "train_seconds": m.train_seconds, "validation": m.accuracy,
                                   "test": m.test_accuracy})
    med = {n: {k: statistics.median(x[k] for x in v) for k in ("train_seconds", "validation", "test")}
           for n, v in runs.items()}
    lines = ["# Training in bfloat16 autocast vs fp32", "", *provenance("bf16_training.py", exp.measure.threads),
             f"- recipe: 3 of 6 layers, pruned vocabulary, int8 on OpenVINO, {args.steps} steps of 32 sentences, "
             "KD (T 2, alpha 0.7) plus hidden-state MSE; seeds 0..{} in both precisions".format(args.repeats - 1),
             "", "| training | seconds (median) | s / step | validation accuracy (median) | test accuracy (median) |",
             "|---|---|---|---|---|"]
    for n, v in med.items():
        lines.append(f"| {n} | {v['train_seconds']:.0f} | {v['train_seconds'] / args.steps:.3f} | "
                     f"{v['validation']:.4f} | {v['test']:.4f} |")
    ratio = med["fp32"]["train_seconds"] / med["bf16"]["train_seconds"]
    lines += ["", (f"- bf16 autocast trained {ratio:.2f}x as fast as fp32; validation accuracy moved by "
              f"{med['bf16']['validation'] - med['fp32']['validation']:+.4f}, test by "
              f"{med['bf16']['test'] - med['fp32']['test']:+.4f}"), "",
              "Every run: " + "; ".join(f"{n} seed {x['seed']}: {x['train_seconds']:.0f} s, validation "
                                        f"{x['validation']:.4f}, test {x['test']:.4f}" for n, v in runs.items() for x in v),
              ""]
    out = HERE / "results"
    (out / "bf16-training.md").write_text("\n".join(lines))
    (out / "bf16-training.json").write_text(json.dumps({"runs": runs, "median": med, "ratio": ratio}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
