"""A real search on SST-2: the default joint space under a stated budget, its Pareto set and plot
beside the teacher's own numbers.

    python experiments/search_sst2.py [--trials 20] [--max-size-mb 10] [--min-retention 0.97]

Resumable: the study lives in <cache>/search-sst2.db; run the same command again to continue.
Writes experiments/results/search-sst2.md, .json and search-sst2-pareto.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from _common import log
from autocompress.config import Experiment
from autocompress.search.budget import Budget
from autocompress.search.run import SearchOutcome, run_search
from autocompress.search.space import load_space
from autocompress.search.study import SearchSettings
from autocompress.tracking import MlflowTracker

HERE = Path(__file__).resolve().parent


def work_dir(exp: Experiment) -> Path:
    """Where the SST-2 search keeps its study, MLflow store and trial folders (shared with sst2_benchmark.py)."""
    return exp.cache / "search-sst2"


def storage_url(exp: Experiment) -> str:
    """The Optuna storage of the SST-2 study (shared with sst2_benchmark.py and export_sst2.py)."""
    return f"sqlite:///{work_dir(exp) / 'optuna.db'}"


def run_sst2_search(exp: Experiment, study: str, space: str, trials: int, max_size_mb: float, min_retention: float,
                    seed: int = 0) -> tuple[SearchOutcome, float]:
    """Run (or resume) the SST-2 study under the budget, report into <work>/report; returns the outcome and
    the wall seconds it took."""
    budget = Budget(max_bytes=int(max_size_mb * 1e6), min_retention=min_retention)
    work = work_dir(exp)
    work.mkdir(parents=True, exist_ok=True)
    settings = SearchSettings(study=study, space=load_space(space), budget=budget, trials=trials,
                              storage=storage_url(exp), seed=seed, out_dir=work / "out")
    tracker = MlflowTracker(f"sqlite:///{work / 'mlflow.db'}", experiment="search-sst2",
                            artifact_root=work / "mlartifacts")
    t0 = time.time()
    done = run_search(exp, settings, tracker=tracker, report_dir=work / "report", log=log)
    return done, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2.yaml"))
    ap.add_argument("--space", default="default")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--max-size-mb", type=float, default=10.0)
    ap.add_argument("--min-retention", type=float, default=0.97)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--study", default="search-sst2")
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    done, wall = run_sst2_search(exp, args.study, args.space, args.trials, args.max_size_mb, args.min_retention,
                                 args.seed)
    study, ref, rep, png = done.study, done.reference, done.report, done.plot_png
    budget = Budget(max_bytes=int(args.max_size_mb * 1e6), min_retention=args.min_retention)

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    shutil.copy(png, results / "search-sst2-pareto.png")
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
               if t.datetime_complete and t.datetime_start]
    header = [
        "# Search on SST-2",
        "",
        f"- command: `python experiments/search_sst2.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}; machine: {platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        f"- space: `search_spaces/{args.space}.yaml`; sampler: TPE (multivariate), seed {args.seed}",
        f"- budget: {budget.describe()}",
        f"- teacher (fine-tuned all-MiniLM-L6-v2): accuracy {ref.score:.4f}, {ref.bytes:,} bytes, "
        f"batch-1 {ref.latency_ms_b1:.2f} ms, batch-32 {ref.latency_ms_b32:.1f} ms",
        f"- this invocation's wall time: {wall / 60:.1f} min; median trial {sorted(seconds)[len(seconds) // 2] / 60:.1f} min"
        if seconds else "",
        "",
    ]
    body = rep.markdown().split("\n", 1)[1]
    (results / "search-sst2.md").write_text("\n".join(header) + body + "\n![Pareto plot](search-sst2-pareto.png)\n")
    trials = [{"number": t.number, "state": t.state.name, "values": t.values, "recipe": t.user_attrs.get("recipe"),
               "constraints": t.constraints, "error": t.user_attrs.get("error"),
               "pruned": t.user_attrs.get("pruned_reason")} for t in study.trials]
    (results / "search-sst2.json").write_text(json.dumps({"teacher": ref.__dict__, "trials": trials,
                                                          "hypervolume": rep.hypervolume}, indent=2) + "\n")
    print((results / "search-sst2.md").read_text())


if __name__ == "__main__":
    main()
