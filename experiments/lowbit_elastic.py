"""Ternary tables and ternary weights cut from the elastic network: what training at those widths buys (issue 30,
item 3).

    python experiments/lowbit_elastic.py [--steps 500]

The rules, fixed before the run (this docstring is committed before the results file is written):

- Experiment `experiments/sst2-ablation.yaml`, as `elastic_ablation.py`: the benchmark's splits (validation
  chooses, dev.tsv is the test split, only reported), the teacher and both networks on the same seeded 8,000-row
  sample of the training rows.
- Two elastic networks with the same block (--steps steps, default 500, of 32 rows, lr 1e-4, temperature 2,
  alpha 1, depths 2-6, heads 0.5 / 0.75 / 1, FFN 0.25 / 0.5 / 0.75 / 1, the largest, the smallest and 2 random
  sub-networks a step, seed 0), differing only in the widths they train at:
  - `base`: quantization-aware at 8 and 4 bits, tables at the weights' width (the benchmark's network);
  - `lowbit`: at 8, 4 and 2 (ternary) bits, and the tables of quantized shapes also at 2 bits
    (`embedding_bits: [2]`, drawn per shape; the smallest shape always ternary tables).
- Each network is cut into the same 75 sub-networks: depth 2 to 6 x (heads, FFN) in (1, 1), (0.75, 0.5),
  (0.5, 0.25) x (weight bits, table bits) in (8, 8), (4, 4), (4, 2), (2, 4), (2, 2); the vocabulary pruned to the
  training rows' tokens; OpenVINO; no recovery steps (cut, quantized and measured by the product's `run_recipe`,
  as a search trial).
- Bytes and batch-1 latency (ratio to the fp32 teacher timed beside each cut) belong to a cut, not a network:
  each point uses the median over both networks of its measured values. Only accuracy differs.
- Compared per (weight bits, table bits): each network's mean validation and test accuracy over the 15 shapes;
  per network: the hypervolume of its 75 points (1 - validation accuracy, bytes / teacher bytes, latency
  ratio; reference 1, 2, 2) and the same on test (only reported); and, chosen on validation, each network's
  most accurate cut at >= 20x and at >= 30x fewer bytes than the fp32 teacher, with its test accuracy.
- One seed: differences under about 0.3 points per cut (keep-last.md) are read as none.

Writes experiments/results/lowbit-elastic.md and .json. Resumable: networks are cached by the product, every cut
keeps its folder under out/lowbit-elastic/.
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
NETWORKS = {"base": {"bits": (8, 4)}, "lowbit": {"bits": (8, 4, 2), "embedding_bits": (2,)}}
DEPTHS = (2, 3, 4, 5, 6)
WIDTHS = ((1.0, 1.0), (0.75, 0.5), (0.5, 0.25))
WIDTH_PAIRS = ((8, 8), (4, 4), (4, 2), (2, 4), (2, 2))  # (weight bits, table bits)
RATIOS = (20.0, 30.0)


def cut_key(depth: int, heads: float, ffn: float, bits: int, table_bits: int) -> str:
    return f"d{depth}-h{heads}-f{ffn}-w{bits}-e{table_bits}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--out", default=str(HERE / "results" / "lowbit-elastic"))
    args = ap.parse_args()
    started = time.time()
    base_exp = Experiment.from_file(HERE / "sst2-ablation.yaml")
    out = ROOT / "out" / "lowbit-elastic"
    rows: dict[str, dict] = {}
    teacher_bytes = 0
    for name, widths in NETWORKS.items():
        block = ElasticConfig(**{**base_exp.elastic.model_dump(), "steps": args.steps, **widths})
        exp = base_exp.model_copy(update={"elastic": block})
        inputs, teacher = engine_inputs(exp, log, elastic=True)
        info = json.loads((exp.cache / "elastic" / inputs.elastic_id / "elastic.json").read_text())
        log(f"{name}: network {inputs.elastic_id} (trained in {info['train_seconds']:.0f} s)")
        teacher_bytes = teacher_bytes or cached_run(inputs, Recipe(), out / "teacher", "teacher").bytes
        n = len(teacher.model.encoder_layers)
        cuts = {}
        for depth in DEPTHS:
            for heads, ffn in WIDTHS:
                for bits, table_bits in WIDTH_PAIRS:
                    key = cut_key(depth, heads, ffn, bits, table_bits)
                    recipe = Recipe(elastic=True, layers=evenly_spaced_layers(n, depth), heads_keep=heads,
                                    ffn_keep=ffn, vocab_prune=True, bits=bits, embedding_bits=table_bits,
                                    runtime="openvino", train_steps=0, temperature=2.0, alpha=0.7)
                    m = cached_run(inputs, recipe, out / f"{name}-{inputs.elastic_id}" / key, f"{name} {key}")
                    cuts[key] = {"validation": m.score, "test": m.test_score, "bytes": m.bytes,
                                 "latency_ratio_b1": m.latency_ratio_b1, "widths": [bits, table_bits]}
        rows[name] = {"network": inputs.elastic_id, "train_seconds": info["train_seconds"], "cuts": cuts,
                      "settings": info["settings"]}
    write(args, rows, teacher.metrics, teacher_bytes, time.time() - started, base_exp)


def shared(rows: dict, key: str, field: str) -> float:
    """A cut's bytes or latency ratio: the median over the networks of what was measured for it."""
    return statistics.median(r["cuts"][key][field] for r in rows.values())


def summarize(rows: dict, teacher_bytes: int) -> dict:
    out: dict = {"per_widths": {}, "per_network": {}}
    keys = list(next(iter(rows.values()))["cuts"])
    for bits, table_bits in WIDTH_PAIRS:
        mine = [k for k in keys if k.endswith(f"-w{bits}-e{table_bits}")]
        out["per_widths"][f"w{bits}-e{table_bits}"] = {
            "mb": statistics.median(shared(rows, k, "bytes") for k in mine) / 1e6,
            **{name: {split: statistics.mean(r["cuts"][k][split] for k in mine) for split in ("validation", "test")}
               for name, r in rows.items()}}
    for name, r in rows.items():
        points = {split: [(1.0 - c[split], shared(rows, k, "bytes") / teacher_bytes, shared(rows, k, "latency_ratio_b1"))
                          for k, c in r["cuts"].items()] for split in ("validation", "test")}
        best = {}
        for ratio in RATIOS:
            small = [k for k in keys if teacher_bytes / shared(rows, k, "bytes") >= ratio]
            pick = max(small, key=lambda k: (r["cuts"][k]["validation"], -shared(rows, k, "bytes")), default=None)
            best[f"{ratio:g}x"] = None if pick is None else {
                "cut": pick, "validation": r["cuts"][pick]["validation"], "test": r["cuts"][pick]["test"],
                "x_smaller": teacher_bytes / shared(rows, pick, "bytes"),
                "x_faster": 1.0 / shared(rows, pick, "latency_ratio_b1")}
        out["per_network"][name] = {"hv_validation": hypervolume(points["validation"], REFERENCE),
                                    "hv_test": hypervolume(points["test"], REFERENCE), "best": best,
                                    "train_seconds": r["train_seconds"]}
    return out


def write(args, rows: dict, teacher: dict, teacher_bytes: int, seconds: float, exp: Experiment) -> None:
    s = summarize(rows, teacher_bytes)
    names = list(rows)
    t_val, t_test = teacher["validation"]["accuracy"], teacher["test"]["accuracy"]
    lines = ["# Ternary tables and weights cut from the elastic network", ""]
    lines += provenance("lowbit_elastic.py", exp.measure.threads)
    lines += [f"- wall time of this invocation {seconds / 60:.1f} min; rules: the script's docstring, committed "
              f"before this file; {args.steps} steps per network",
              f"- teacher (8,000 training rows, 1 epoch): validation accuracy {t_val:.4f}, test {t_test:.4f}; "
              f"{teacher_bytes:,} bytes",
              "", "## Mean accuracy over the 15 shapes, per (weight bits, table bits)", "",
              "| weights / tables | median MB | " + " | ".join(f"{n} validation | {n} test" for n in names) + " |",
              "|---|---|" + "---|---|" * len(names)]
    for widths, row in s["per_widths"].items():
        cells = " | ".join(f"{row[n]['validation']:.4f} | {row[n]['test']:.4f}" for n in names)
        lines.append(f"| {widths} | {row['mb']:.2f} | {cells} |")
    lines += ["", "## Per network", "",
              "| network | hypervolume (validation) | hypervolume (test) | training s | "
              + " | ".join(f"best at >= {r:g}x (validation / test, % of teacher test)" for r in RATIOS) + " |",
              "|---|---|---|---|" + "---|" * len(RATIOS)]
    for name in names:
        p = s["per_network"][name]
        cells = []
        for ratio in RATIOS:
            b = p["best"][f"{ratio:g}x"]
            cells.append("none" if b is None else f"{b['cut']}: {b['validation']:.4f} / {b['test']:.4f} "
                         f"({b['test'] / t_test:.1%}), {b['x_smaller']:.1f}x smaller, {b['x_faster']:.1f}x faster")
        lines.append(f"| {name} | {p['hv_validation']:.4f} | {p['hv_test']:.4f} | {p['train_seconds']:.0f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Every cut (validation / test accuracy)", "",
              "| cut | MB | x smaller | latency ratio | " + " | ".join(names) + " |", "|---|---|---|---|" + "---|" * len(names)]
    for key in rows[names[0]]["cuts"]:
        size = shared(rows, key, "bytes")
        cells = " | ".join(f"{rows[n]['cuts'][key]['validation']:.4f} / {rows[n]['cuts'][key]['test']:.4f}"
                           for n in names)
        lines.append(f"| {key} | {size / 1e6:.2f} | {teacher_bytes / size:.1f} | "
                     f"{shared(rows, key, 'latency_ratio_b1'):.3f} | {cells} |")
    out = Path(args.out)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"summary": s, "networks": rows, "teacher": teacher,
                                                    "teacher_bytes": teacher_bytes}, indent=1))
    log(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
