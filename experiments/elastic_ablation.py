"""What each ingredient of the elastic network adds to its sub-networks' front, at equal training steps.

    python experiments/elastic_ablation.py [--steps 500] [--variants base layerwise progressive augment all]

The rules, fixed before the run (this docstring is committed before the results file is written):

- Experiment `experiments/sst2-ablation.yaml`: the SST-2 benchmark's splits (872 whole training sentences
  hold out as validation, their phrases out of training; dev.tsv is the test split, only reported), the
  teacher (all-MiniLM-L6-v2, 1 epoch, lr 5e-5) and every network trained on the same seeded 8,000-row
  sample of the remaining training rows.
- Every variant trains one elastic network from that teacher with the same block: --steps steps (default
  500) of 32 rows, lr 1e-4, temperature 2, alpha 1, depths 2-6, heads 0.5 / 0.75 / 1, FFN 0.25 / 0.5 /
  0.75 / 1, the largest, the smallest and 2 random sub-networks a step, quantization-aware at 8 and 4
  bits, seed 0. The variants differ only in:
  - `base`: nothing more (the block as the benchmark trains it);
  - `layerwise`: hidden_mse 1, attention_kl 1 (layer outputs and the kept heads' attention maps follow the
    ranked teacher on the uniform layer map);
  - `progressive`: progressive shrinking (the first 10 % of the steps the largest sub-network only, up to
    40 % every depth at full width, then every shape);
  - `augment`: 4 new rows per training row (32,000), words dropped / replaced at 0.1 or two rows spliced,
    labelled by the teacher; the steps draw from the 40,000 rows;
  - `all`: the three together.
  Equal steps and sub-networks per step are the equal compute; the layer-wise terms add one teacher forward
  pass a step and augmentation its one-off scoring of the new rows, both reported in seconds.
- Each network is cut into the same 30 sub-networks: depth 2 to 6 x (heads, FFN) in (1, 1), (0.75, 0.5),
  (0.5, 0.25) x int8 weights and tables, or 4-bit weights and tables; the vocabulary pruned to the training
  rows' tokens; OpenVINO; no recovery steps (cut, quantized and measured as a search trial is, through the
  product's `run_recipe`).
- Bytes and batch-1 latency (ratio to the fp32 teacher timed beside each cut) belong to a shape, not to a
  variant: a shape's point uses the median over the variants of its measured ratio, so that timing noise
  does not enter the comparison. Only the accuracy differs between variants.
- The number compared: the hypervolume of each variant's 30 points (1 - validation accuracy, bytes / teacher
  bytes, latency ratio; reference 1, 2, 2, as the product's report), and the same on test accuracy (only
  reported). Also each variant's mean validation accuracy over the 30 cuts and at the smallest ones.
- One seed: a difference smaller than the seed-to-seed spread of earlier runs here (about 0.3 points of
  accuracy per cut, see keep-last.md) is read as no difference.

Writes experiments/results/elastic-ablation.md and .json. Resumable: networks are cached by the product
(<cache>/elastic/) and every cut keeps its folder under out/elastic-ablation/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import ROOT, cached_run, log, provenance

from autocompress.config import ElasticConfig, Experiment
from autocompress.engine.recipe import Recipe
from autocompress.engine.student import evenly_spaced_layers
from autocompress.search.pareto import REFERENCE, hypervolume
from autocompress.session import engine_inputs

HERE = Path(__file__).resolve().parent
LAYERWISE = {"hidden_mse": 1.0, "attention_kl": 1.0}
AUGMENT = {"augment": {"factor": 4.0}}
VARIANTS = {
    "base": {},
    "layerwise": LAYERWISE,
    "progressive": {"progressive": True},
    "augment": AUGMENT,
    "all": {**LAYERWISE, "progressive": True, **AUGMENT},
}
DEPTHS = (2, 3, 4, 5, 6)
WIDTHS = ((1.0, 1.0), (0.75, 0.5), (0.5, 0.25))
BITS = (8, 4)


def shapes() -> list[tuple[int, float, float, int]]:
    return [(d, h, f, b) for d in DEPTHS for h, f in WIDTHS for b in BITS]


def recipe(n_layers: int, depth: int, heads: float, ffn: float, bits: int) -> Recipe:
    return Recipe(elastic=True, layers=evenly_spaced_layers(n_layers, depth), heads_keep=heads, ffn_keep=ffn,
                  vocab_prune=True, bits=bits, embedding_bits=bits, runtime="openvino", train_steps=0,
                  temperature=2.0, alpha=0.7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", default=str(HERE / "results" / "elastic-ablation"))
    args = ap.parse_args()
    started = time.time()
    base_exp = Experiment.from_file(HERE / "sst2-ablation.yaml")
    rows: dict[str, dict] = {}
    teacher_bytes = None
    for name in args.variants:
        block = ElasticConfig(**{**base_exp.elastic.model_dump(), "steps": args.steps, **VARIANTS[name]})
        exp = base_exp.model_copy(update={"elastic": block})
        t0 = time.time()
        inputs, teacher = engine_inputs(exp, log, elastic=True)
        info = json.loads((exp.cache / "elastic" / inputs.elastic_id / "elastic.json").read_text())
        log(f"{name}: network {inputs.elastic_id} ready in {time.time() - t0:.0f} s "
            f"(trained in {info['train_seconds']:.0f} s)")
        if teacher_bytes is None:
            teacher_bytes = cached_run(inputs, Recipe(), ROOT / "out" / "elastic-ablation" / "teacher", "teacher").bytes
        n = len(teacher.model.encoder_layers)
        cuts = {}
        for depth, heads, ffn, bits in shapes():
            key = f"d{depth}-h{heads}-f{ffn}-b{bits}"
            m = cached_run(inputs, recipe(n, depth, heads, ffn, bits),
                           ROOT / "out" / "elastic-ablation" / f"{name}-{inputs.elastic_id}" / key, f"{name} {key}")
            cuts[key] = {"validation": m.score, "test": m.test_score, "bytes": m.bytes,
                         "latency_ratio_b1": m.latency_ratio_b1}
        rows[name] = {"network": inputs.elastic_id, "train_seconds": info["train_seconds"], "cuts": cuts,
                      "settings": info["settings"]}
        augment_file = list(teacher.folder.glob("augment-*.npz"))
        rows[name]["augment_files"] = [f.name for f in augment_file]
    teacher_scores = teacher.metrics
    write(args, rows, teacher_scores, teacher_bytes, time.time() - started, base_exp)


def _points(rows: dict, name: str, split: str) -> list[tuple[float, float, float]]:
    """(1 - accuracy, bytes / teacher's, latency ratio) per cut, bytes and latency the medians over variants."""
    out = []
    variants = [r for v, r in rows.items() if not v.startswith("_")]
    for key, cut in rows[name]["cuts"].items():
        ratio = statistics.median(r["cuts"][key]["latency_ratio_b1"] for r in variants)
        size = statistics.median(r["cuts"][key]["bytes"] for r in variants)
        out.append((1.0 - cut[split], size / rows["_teacher_bytes"], ratio))
    return out


def write(args, rows: dict, teacher_scores: dict, teacher_bytes: int, seconds: float, exp: Experiment) -> None:
    variants = list(rows)
    table = {**rows, "_teacher_bytes": teacher_bytes}
    summary = {}
    for name in variants:
        cuts = rows[name]["cuts"]
        small = [c for k, c in cuts.items() if k.startswith(("d2-", "d3-"))]
        summary[name] = {
            "hv_validation": hypervolume(_points(table, name, "validation"), REFERENCE),
            "hv_test": hypervolume(_points(table, name, "test"), REFERENCE),
            "mean_validation": statistics.mean(c["validation"] for c in cuts.values()),
            "mean_test": statistics.mean(c["test"] for c in cuts.values()),
            "mean_validation_small": statistics.mean(c["validation"] for c in small),
            "mean_test_small": statistics.mean(c["test"] for c in small),
            "train_seconds": rows[name]["train_seconds"],
        }
    t = teacher_scores
    lines = ["# Elastic network ablation: what each ingredient adds, at equal steps", ""]
    lines += provenance("elastic_ablation.py", exp.measure.threads)
    lines += [f"- wall time of this invocation {seconds / 60:.1f} min; the rules are the script's docstring, "
              f"committed before this file; {args.steps} steps per network",
              f"- teacher (8,000 training rows, 1 epoch): validation accuracy {t['validation']['accuracy']:.4f}, "
              f"test {t['test']['accuracy']:.4f}; {teacher_bytes:,} bytes",
              "", "| variant | hypervolume (validation) | hypervolume (test) | mean validation acc. (30 cuts) | "
              "mean test acc. | mean validation, depth 2-3 | mean test, depth 2-3 | training s |",
              "|---|---|---|---|---|---|---|---|"]
    for name in variants:
        s = summary[name]
        lines.append(f"| {name} | {s['hv_validation']:.4f} | {s['hv_test']:.4f} | {s['mean_validation']:.4f} | "
                     f"{s['mean_test']:.4f} | {s['mean_validation_small']:.4f} | {s['mean_test_small']:.4f} | "
                     f"{s['train_seconds']:.0f} |")
    lines += ["", "## Every cut (validation / test accuracy)", "",
              "| cut | MB | latency ratio | " + " | ".join(variants) + " |",
              "|---|---|---|" + "---|" * len(variants)]
    for key in rows[variants[0]]["cuts"]:
        ratio = statistics.median(rows[v]["cuts"][key]["latency_ratio_b1"] for v in variants)
        size = statistics.median(rows[v]["cuts"][key]["bytes"] for v in variants)
        cells = " | ".join(f"{rows[v]['cuts'][key]['validation']:.4f} / {rows[v]['cuts'][key]['test']:.4f}"
                           for v in variants)
        lines.append(f"| {key} | {size / 1e6:.1f} | {ratio:.3f} | {cells} |")
    out = Path(args.out)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"summary": summary, "variants": rows,
                                                    "teacher": teacher_scores, "teacher_bytes": teacher_bytes},
                                                   indent=1))
    log(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
