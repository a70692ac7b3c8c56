"""How much a low-rank word-embedding table costs the teacher with no training after it (issue 30, item 3).

    python experiments/embedding_rank.py [--experiment experiments/sst2-ablation.yaml] [--ranks 96 128 192 256]

The teacher's word-embedding rows of the tokens its training rows use (the rows vocabulary pruning keeps) are
replaced by their best rank-r approximation (truncated SVD); the rest of the model is untouched and nothing is
trained. Validation and test accuracy in torch fp32, beside the unfactored teacher, and the share of the
table's energy (sum of squared singular values) each rank keeps. A factored table of V rows stores
r x (V + hidden) numbers instead of V x hidden. Writes experiments/results/embedding-rank.md and .json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import log, provenance

from autocompress.config import Experiment
from autocompress.engine.measure import predict_logits
from autocompress.teacher import prepare

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2-ablation.yaml"))
    ap.add_argument("--ranks", type=int, nargs="+", default=[96, 128, 192, 256])
    ap.add_argument("--out", default=str(HERE / "results" / "embedding-rank"))
    args = ap.parse_args()
    started = time.time()
    exp = Experiment.from_file(args.experiment)
    torch.set_num_threads(exp.measure.threads)
    teacher = prepare(exp, log)
    model, data = teacher.model, teacher.data
    table = model.family.word_table(model.hf)
    full = table.weight.detach().clone()
    kept = torch.as_tensor(np.unique(data.train.ids), dtype=torch.long)
    u, s, vh = torch.linalg.svd(full[kept], full_matrices=False)
    energy = ((s ** 2).cumsum(0) / (s ** 2).sum()).tolist()
    hidden = full.shape[1]

    def accuracy(split: str) -> float:
        rows = data.split(split)
        return float((predict_logits(model, rows).argmax(-1) == rows.labels).mean())

    rows = [{"rank": hidden, "energy": 1.0, "numbers": len(kept) * hidden,
             "validation": accuracy("validation"), "test": accuracy("test")}]
    for r in sorted(args.ranks):
        with torch.no_grad():
            table.weight.copy_(full)
            table.weight[kept] = (u[:, :r] * s[:r]) @ vh[:r]
        rows.append({"rank": r, "energy": energy[r - 1], "numbers": r * (len(kept) + hidden),
                     "validation": accuracy("validation"), "test": accuracy("test")})
        log(f"rank {r}: validation {rows[-1]['validation']:.4f}, test {rows[-1]['test']:.4f}")
    lines = ["# A low-rank word-embedding table, untrained: what the teacher loses", ""]
    lines += provenance("embedding_rank.py", exp.measure.threads)
    lines += [f"- experiment `{Path(args.experiment).name}`; {len(kept):,} kept token rows x {hidden}; "
              f"wall time {time.time() - started:.0f} s; torch fp32, nothing trained after the factorization", "",
              "| rank | energy kept | table numbers | x fewer | validation accuracy | test accuracy |",
              "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['rank']}{' (unfactored)' if row['rank'] == hidden else ''} | {row['energy']:.3f} | "
                     f"{row['numbers']:,} | {rows[0]['numbers'] / row['numbers']:.2f} | {row['validation']:.4f} | "
                     f"{row['test']:.4f} |")
    out = Path(args.out)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    log(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
