"""A search on one task, as a user runs it, and its results file: the teacher, the product's baselines (the
teacher quantized on each installed runtime, timed side by side) and the Pareto front, chosen on validation
rows and reported on the test rows.

    python experiments/task_search.py experiments/mrpc.yaml --space quick --trials 4 --stem search-mrpc

Runs `autocompress search EXPERIMENT --space SPACE --trials N --study STEM --baselines B` in out/task-search/STEM/ (its
stores and trial folders stay there; the run resumes if started again), then writes
experiments/results/STEM.md (the command, date, machine and wall time above the report the search wrote,
unchanged), STEM.json (the report's JSON) and STEM-pareto.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import provenance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def main() -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", type=Path)
    ap.add_argument("--space", default="quick")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--stem", required=True, help="the study's and the results file's name")
    ap.add_argument("--baselines", default="all", help="the search's --baselines (all, none, or names)")
    args = ap.parse_args()
    work = ROOT / "out" / "task-search" / args.stem
    work.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "autocompress.cli", "search", str(args.experiment.resolve()), "--space", args.space,
            "--trials", str(args.trials), "--study", args.stem, "--baselines", args.baselines]
    started = time.time()
    with open(work / "stdout.log", "w") as out, open(work / "stderr.log", "w") as err:
        code = subprocess.run(argv, cwd=work, env={**os.environ, **OFFLINE}, stdout=out, stderr=err).returncode
    seconds = time.time() - started
    if code != 0:
        sys.exit(f"the search exited {code}; see {work / 'stderr.log'}")
    folder = work / "out" / args.stem
    report = (folder / "report.md").read_text()
    summary = [ln for ln in (work / "stderr.log").read_text().splitlines()
               if ln.startswith(("search:   ", "search: finished"))]
    lines = [f"# A search on {args.experiment.stem}: teacher, baselines and Pareto front", ""]
    lines += provenance("task_search.py", 2)
    lines += [
        f"- search command (in out/task-search/{args.stem}/): `autocompress search {args.experiment} --space "
        f"{args.space} --trials {args.trials} --study {args.stem} --baselines {args.baselines}`; wall time {seconds / 60:.1f} min (teacher "
        "fine-tuning, its logits, the baselines, the trials and the report), exit code 0",
        "- below: the report the search wrote, unchanged",
        "",
        "```",
        *summary,
        "```",
        "",
        report.replace("# Search report", "## Search report", 1).replace(
            "![Pareto plot](pareto.png)", f"![Pareto plot]({args.stem}-pareto.png)"),
    ]
    results = HERE / "results"
    (results / f"{args.stem}.md").write_text("\n".join(lines))
    got = json.loads((folder / "report.json").read_text())
    (results / f"{args.stem}.json").write_text(json.dumps({"wall_seconds": round(seconds, 1), "report": got},
                                                          indent=2) + "\n")
    if (folder / "pareto.png").is_file():
        shutil.copy(folder / "pareto.png", results / f"{args.stem}-pareto.png")
    print(f"written: {results / args.stem}.md, .json, -pareto.png")


if __name__ == "__main__":
    main()
