"""Default sampler (multivariate TPE) against random search, by hypervolume at equal trial counts.

    python experiments/sampler_compare.py [--trials 5] [--seeds 0 1 2]

Both samplers start from nothing (no enqueued starting points), on the same experiment, space,
cached teacher and reference. Studies live in <cache>/sampler-compare.db, so an interrupted run
resumes. Writes experiments/results/sampler-compare.md / .json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
from pathlib import Path

import torch

from autocompress.config import Experiment
from autocompress.search.pareto import normalized_hypervolume
from autocompress.search.space import load_space
from autocompress.search.study import SearchSettings, run_search, trial_points
from autocompress.session import engine_inputs

HERE = Path(__file__).resolve().parent


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2-compare.yaml"))
    ap.add_argument("--space", default="quick")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    prepared = engine_inputs(exp, log)
    storage = f"sqlite:///{exp.cache / 'sampler-compare.db'}"
    space = load_space(args.space)
    studies: dict[str, dict[int, object]] = {}
    ref = None
    for seed in args.seeds:
        for sampler in ("tpe", "random"):
            name = f"cmp-{args.space}-{sampler}-{seed}"
            log(f"{name}: running")
            settings = SearchSettings(study=name, space=space, trials=args.trials, storage=storage, sampler=sampler,
                                      seed=seed, out_dir=exp.cache / "sampler-compare", enqueue_starts=False)
            study, study_ref, _ = run_search(exp, settings, log=log, prepared=prepared)
            ref = ref or study_ref  # one reference (the first measurement of the teacher) for every curve
            studies.setdefault(sampler, {})[seed] = study
    curves: dict[str, dict[int, list[float]]] = {}
    for sampler, per_seed in studies.items():
        for seed, study in per_seed.items():
            pts = sorted(trial_points(study), key=lambda p: p.key)
            curves.setdefault(sampler, {})[seed] = [
                normalized_hypervolume(pts[: k + 1], ref.bytes, ref.latency_ms_b1) for k in range(len(pts))
            ]
    lines = [
        "# Sampler comparison: multivariate TPE vs random search",
        "",
        f"- command: `python experiments/sampler_compare.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}; machine: {platform.machine()}, "
        f"torch {torch.__version__}",
        f"- experiment `{Path(args.experiment).name}`, space `{args.space}`, {args.trials} trials per study, "
        f"seeds {args.seeds}, no enqueued starting points",
        f"- hypervolume of (1 - accuracy, bytes / teacher, latency / teacher), reference (1, 2, 2); teacher "
        f"accuracy {ref.accuracy:.4f}, {ref.bytes:,} bytes, batch-1 {ref.latency_ms_b1:.2f} ms",
        "",
        "| trials done | " + " | ".join(f"TPE s{s}" for s in args.seeds) + " | " +
        " | ".join(f"random s{s}" for s in args.seeds) + " | median TPE / median random |",
        "|---" * (2 * len(args.seeds) + 2) + "|",
    ]
    n = min(len(c) for per in curves.values() for c in per.values())
    for k in range(n):
        tpe = [curves["tpe"][s][k] for s in args.seeds]
        rnd = [curves["random"][s][k] for s in args.seeds]
        ratio = statistics.median(tpe) / statistics.median(rnd) if statistics.median(rnd) > 0 else float("nan")
        lines.append(f"| {k + 1} | " + " | ".join(f"{v:.4f}" for v in tpe + rnd) + f" | {ratio:.3f} |")
    lines.append("")
    out = HERE / "results"
    (out / "sampler-compare.md").write_text("\n".join(lines))
    (out / "sampler-compare.json").write_text(json.dumps({"curves": curves, "reference": ref.__dict__}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
