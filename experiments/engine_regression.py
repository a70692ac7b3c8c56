"""Same recipe, same seed, same numbers: run a fixed set of recipes on SST-2 (2,000-sentence
teacher) and write their accuracy and bytes, to compare two versions of the engine.

    python experiments/engine_regression.py --out before.json     # on one version
    python experiments/engine_regression.py --out after.json --compare before.json

Accuracy and bytes are deterministic for a recipe and seed on one machine; latency is not and is
left out. The comparison prints each row's difference and fails when bytes differ or accuracy
moves by more than 0.002.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import log
from autocompress.config import Experiment
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs, run_recipe

HERE = Path(__file__).resolve().parent
L3 = (0, 2, 4)
ROWS: dict[str, dict] = {
    "teacher fp32": {},
    "teacher bf16": {"bits": 16},
    "3 layers, 60 steps": {"layers": L3, "train_steps": 60, "lr": 1e-4},
    "3 layers, half heads and FFN": {"layers": L3, "heads_keep": 0.5, "ffn_keep": 0.5, "train_steps": 40},
    "50% gradual pruning, int8": {"layers": L3, "prune_ratio": 0.5, "bits": 8, "train_steps": 40},
    "4-bit, 8-bit embeddings, pruned vocabulary": {"layers": L3, "bits": 4, "embedding_bits": 8,
                                                    "vocab_prune": True, "train_steps": 40},
    "binary, per-layer pruning": {"layers": L3, "bits": 1, "embedding_bits": 8, "prune_ratio": 0.3,
                                  "prune_scope": "layer", "train_steps": 20},
}
NEW_ROWS: dict[str, dict] = {  # rows the older engine could not build
    "threshold pruning": {"layers": L3, "prune_threshold": 0.02, "train_steps": 20},
    "low-rank FFN, half rank": {"layers": L3, "rank_keep": 0.5, "train_steps": 40},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", type=Path, default=HERE / "sst2-small.yaml")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--compare", type=Path, help="an earlier output to compare against")
    ap.add_argument("--new-rows", action="store_true", help="also run the rows the older engine could not build")
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    inputs, teacher = engine_inputs(exp, log)
    rows = {**ROWS, **(NEW_ROWS if args.new_rows else {})}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, values) in enumerate(rows.items()):
            log(f"row {name}")
            m = run_recipe(inputs, Recipe.from_dict(values), Path(tmp) / f"row{i}").metrics
            results[name] = {"recipe": values, "accuracy": m.accuracy, "bytes": m.bytes,
                             "weight_bytes": m.weight_bytes}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.compare:
        sys.exit(compare(json.loads(args.compare.read_text()), results))


def compare(before: dict, after: dict, tolerance: float = 0.002) -> int:
    bad = 0
    print("| row | accuracy before | after | bytes before | after |")
    print("|---|---|---|---|---|")
    for name, b in before.items():
        a = after[name]
        ok = a["bytes"] == b["bytes"] and abs(a["accuracy"] - b["accuracy"]) <= tolerance
        bad += not ok
        print(f"| {name} | {b['accuracy']:.4f} | {a['accuracy']:.4f} | {b['bytes']:,} | {a['bytes']:,} |"
              + ("" if ok else " **differs**"))
    return 1 if bad else 0


if __name__ == "__main__":
    main()
