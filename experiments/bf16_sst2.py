"""Issue 13's A/B on SST-2: training steps under CPU bfloat16 autocast against float32, same students.

    python experiments/bf16_sst2.py [--experiment experiments/sst2.yaml] [--steps 600] [--seeds 0 1]
        [--out experiments/results/bf16-sst2]

Each pair trains one recipe twice, in float32 and under bf16 autocast (`bf16: true`: bf16 matmuls,
float32 weights, loss and optimizer), with the same seed, rows and steps; the pair's two runs follow
each other and alternate which goes first. Per pair: seconds per training step (the run's
train_seconds / steps, so data, forward, backward and optimizer), validation and test accuracy of the
exported model on its runtime. The file gives the median fp32 / bf16 step-time ratio and the mean test
difference over pairs. Resumable: each run is kept in <cache>/bench-bf16/<row>-<fingerprint>/.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import cached_run, log, provenance

from autocompress.config import Experiment
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs

HERE = Path(__file__).resolve().parent

# Students the search's fast corner is made of: the teacher's depth at int8, and half its depth at int8.
SHAPES = {
    "6 layers, int8": {"bits": 8},
    "3 layers, int8": {"bits": 8, "layers": [0, 2, 4]},
}


def recipe(shape: dict, steps: int, seed: int, bf16: bool) -> Recipe:
    return Recipe(**shape, vocab_prune=True, runtime="onnxruntime", train_steps=steps, lr=1e-4, batch_size=32,
                  seed=seed, bf16=bf16)


def run(inputs, root: Path, name: str, r: Recipe) -> dict:
    folder = root / f"{name}-{r.fingerprint()}"
    m = cached_run(inputs, r, folder, name)
    log(f"{name}: {m.train_seconds / m.train_steps:.3f} s a step, validation {m.score:.4f}, test {m.test_score:.4f}")
    return {"step_seconds": m.train_seconds / m.train_steps, "validation": m.score, "test": m.test_score,
            "bytes": m.bytes, "folder": folder.name}


def render(info: dict, pairs: list[dict]) -> str:
    ratios = [p["fp32"]["step_seconds"] / p["bf16"]["step_seconds"] for p in pairs]
    diffs = [100 * (p["bf16"]["test"] - p["fp32"]["test"]) for p in pairs]
    vdiffs = [100 * (p["bf16"]["validation"] - p["fp32"]["validation"]) for p in pairs]
    lines = ["# bf16 autocast training against float32 on SST-2 (issue 13)", "", *info["provenance"],
             (f"- {info['steps']} training steps of 32 rows per run; {info['validation_rows']} validation rows, "
             f"{info['test_rows']} test rows; lr 1e-4, distilled from the teacher's logits, exported to ONNX Runtime"),
             "", ("| student | seed | first | fp32 s/step | bf16 s/step | fp32 / bf16 | fp32 val | bf16 val | fp32 test "
             "| bf16 test |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for p, r in zip(pairs, ratios):
        a, b = p["fp32"], p["bf16"]
        lines.append(f"| {p['shape']} | {p['seed']} | {p['first']} | {a['step_seconds']:.3f} | {b['step_seconds']:.3f} | "
                     f"{r:.2f} | {a['validation']:.4f} | {b['validation']:.4f} | {a['test']:.4f} | {b['test']:.4f} |")
    lines += ["", (f"- median step-time ratio fp32 / bf16 over {len(pairs)} pairs: {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})"),
              (f"- bf16 minus fp32, mean over pairs: validation {statistics.mean(vdiffs):+.2f} points, test "
              f"{statistics.mean(diffs):+.2f} points (per pair: {', '.join(f'{d:+.2f}' for d in diffs)}; one point "
              f"is {info['test_rows'] / 100:.1f} test sentences)")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2.yaml"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", default=str(HERE / "results" / "bf16-sst2"))
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    inputs, _teacher = engine_inputs(exp, log)
    root = exp.cache / "bench-bf16"
    pairs = []
    for k, (seed, (shape_name, shape)) in enumerate((s, x) for s in args.seeds for x in SHAPES.items()):
        order = (False, True) if k % 2 == 0 else (True, False)
        runs = {}
        for bf16 in order:
            tag = "bf16" if bf16 else "fp32"
            runs[tag] = run(inputs, root, f"{shape_name.split(',')[0].replace(' ', '')}-s{seed}-{tag}",
                            recipe(shape, args.steps, seed, bf16))
        pairs.append({"shape": shape_name, "seed": seed, "first": "bf16" if order[0] else "fp32", **runs})
    info = {"provenance": provenance("bf16_sst2.py", exp.measure.threads), "steps": args.steps,
            "validation_rows": len(inputs.data.validation), "test_rows": len(inputs.data.test)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    md = render(info, pairs)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"info": info, "pairs": pairs}, indent=2) + "\n")
    print(md)


if __name__ == "__main__":
    main()
