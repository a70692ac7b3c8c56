"""Which teacher layers a shallower student keeps: the first ones (evenly spread from layer 0, the default) or
spread so that the teacher's last layer is kept (`keep_last`), at equal depth, steps and precision.

    python experiments/keep_last.py [--seeds 0 1] [--steps 200]

For SST-2 (experiments/sst2-quick.yaml, the classifier of the README's first search) it builds 5-layer int8
OpenVINO students like quick.yaml's (alpha 0.7, T 2, lr 1e-4, batch 32) from layers 0-4 and from layers 0-3 + 5,
one per seed each, and writes experiments/results/keep-last.md: validation and test accuracy of each
(bytes and speed do not differ: the shapes are the same). The embedding task's comparison is in
search-embeddings-stsb-first-layers.md against search-embeddings-stsb.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import ROOT, cached_run, log, provenance

from autocompress.config import Experiment
from autocompress.engine.recipe import Recipe
from autocompress.engine.student import evenly_spaced_layers
from autocompress.session import engine_inputs

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    started = time.time()
    exp = Experiment.from_file(HERE / "sst2-quick.yaml")
    inputs, teacher = engine_inputs(exp, log)
    n = len(teacher.model.encoder_layers)
    rows = {}
    for keep_last in (False, True):
        layers = evenly_spaced_layers(n, n - 1, keep_last)
        for seed in args.seeds:
            recipe = Recipe(layers=layers, bits=8, runtime="openvino", train_steps=args.steps, alpha=0.7,
                            temperature=2.0, lr=1e-4, batch_size=32, seed=seed, qat=False)
            name = f"{'last' if keep_last else 'first'}-seed{seed}"
            m = cached_run(inputs, recipe, ROOT / "out" / "keep-last" / name, name)
            rows[name] = {"layers": list(layers), "seed": seed, "validation": m.score, "test": m.test_score,
                          "bytes": m.bytes}
            log(f"{name}: layers {list(layers)}, validation {m.score:.4f}, test {m.test_score:.4f}")
    t = teacher.metrics
    lines = ["# Which layers a 5-layer student keeps: the first five, or the teacher's last one too", ""]
    lines += provenance("keep_last.py", exp.measure.threads)
    lines += [f"- wall time {(time.time() - started) / 60:.1f} min; SST-2 as in experiments/sst2-quick.yaml "
              f"(8,000 training rows); {args.steps} distillation steps, int8 on OpenVINO, seeds {args.seeds}",
              f"- teacher: validation accuracy {t['validation']['accuracy']:.4f}, test {t['test']['accuracy']:.4f}",
              "", "| layers kept | seed | validation accuracy | test accuracy | bytes |", "|---|---|---|---|---|"]
    for r in rows.values():
        lines.append(f"| {r['layers']} | {r['seed']} | {r['validation']:.4f} | {r['test']:.4f} | {r['bytes']:,} |")
    for kind in ("first", "last"):
        got = [r for k, r in rows.items() if k.startswith(kind)]
        lines.append(f"| median, {kind} | | {statistics.median(r['validation'] for r in got):.4f} | "
                     f"{statistics.median(r['test'] for r in got):.4f} | |")
    (HERE / "results" / "keep-last.md").write_text("\n".join(lines) + "\n")
    (HERE / "results" / "keep-last.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("written: experiments/results/keep-last.md")


if __name__ == "__main__":
    main()
