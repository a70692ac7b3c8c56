"""The README's main command, run as a new user runs it: from a fresh clone, set-up included.

    python experiments/main_command.py run [--clone ../main-command-run]   # clone HEAD, set up, run, time
    python experiments/main_command.py write [--clone ../main-command-run] # results file from that run

`run` clones this repository's HEAD into --clone (which must not exist; beside the checkout, so that
`../shared/data` is where the experiment expects it), then runs `bash .ci/setup` and the search command
quoted in README.md, exactly, timing each, with stdout and stderr kept in the clone. `write` turns that
run into experiments/results/search-sst2-quick.md, .json and -pareto.png: the command, date and machine,
set-up and search wall times, and the report the search wrote (its baselines, the side-by-side
latencies it measured and the verdict), unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import provenance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEM = "search-sst2-quick"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def readme_command(readme: Path = ROOT / "README.md") -> str:
    """The main command's search part, as README.md quotes it (after `bash .ci/setup && `)."""
    block = re.search(r"```bash\n(bash \.ci/setup && HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \S+ search [^\n]+)\n```",
                      readme.read_text())
    if block is None:
        sys.exit("README.md quotes no `bash .ci/setup && ... search ...` command")
    return block.group(1).split(" && ", 1)[1]


def run(clone: Path) -> None:
    if clone.exists():
        sys.exit(f"{clone} exists: the run is from a fresh clone; remove it or pass another --clone")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    command = readme_command(clone / "README.md")
    env_words, argv = [], shlex.split(command)
    while "=" in argv[0]:
        env_words.append(argv.pop(0))
    env = {**os.environ, **dict(w.split("=", 1) for w in env_words)}
    times = {"started": f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}", "commit": subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip(),
        "command": f"bash .ci/setup && {command}"}
    t0 = time.time()
    subprocess.run(["bash", ".ci/setup"], cwd=clone, check=True, stdout=subprocess.DEVNULL)
    times["setup_seconds"] = round(time.time() - t0, 1)
    t1 = time.time()
    with open(clone / "main-stdout.log", "w") as out, open(clone / "main-stderr.log", "w") as err:
        times["exit_code"] = subprocess.run(argv, cwd=clone, env=env, stdout=out, stderr=err).returncode
    times["search_seconds"] = round(time.time() - t1, 1)
    times["total_seconds"] = round(time.time() - t0, 1)
    (clone / "main-times.json").write_text(json.dumps(times, indent=2) + "\n")
    print(json.dumps(times, indent=2))


def write(clone: Path, stem: str = STEM) -> None:
    times = json.loads((clone / "main-times.json").read_text())
    reports = sorted((clone / "out").glob("*/report.json"))
    if len(reports) != 1:
        sys.exit(f"{clone}/out holds {len(reports)} reports; expected the one the main command wrote")
    folder = reports[0].parent
    got = json.loads(reports[0].read_text())
    stderr = (clone / "main-stderr.log").read_text().splitlines()
    summary = [ln for ln in stderr if ln.startswith("search:   ") or ln.startswith("search: finished")]
    lines = [f"# The README's main command, from a fresh clone", ""]
    lines += provenance("main_command.py", 2)
    lines += [
        f"- command, run in a fresh clone of commit {times['commit']} (started {times['started']}): "
        f"`{times['command']}`",
        f"- wall time: **{times['total_seconds'] / 60:.1f} min** in all: set-up {times['setup_seconds'] / 60:.1f} min "
        f"(`bash .ci/setup`, pip's download cache warm), search {times['search_seconds'] / 60:.1f} min (teacher "
        "fine-tuning, its logits, the baselines, the trials and the report); exit code "
        f"{times['exit_code']}",
        "- below: the report the search wrote (`out/<study>/report.md`), unchanged; the JSON beside this file is "
        "its `report.json` with the times above",
        "",
        "The search's closing lines:",
        "",
        "```",
        *summary,
        "```",
        "",
    ]
    md = (folder / "report.md").read_text().replace("![Pareto plot](pareto.png)", f"![Pareto plot]({stem}-pareto.png)")
    lines.append(md.replace("# Search report", "## Search report", 1))
    results = HERE / "results"
    (results / f"{stem}.md").write_text("\n".join(lines))
    (results / f"{stem}.json").write_text(json.dumps({"run": times, "report": got}, indent=2) + "\n")
    shutil.copy(folder / "pareto.png", results / f"{stem}-pareto.png")
    print(f"written: {results / stem}.md, .json, -pareto.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("run", "write"))
    ap.add_argument("--clone", type=Path, default=ROOT.parent / "main-command-run")
    ap.add_argument("--stem", default=STEM, help="write: the results file's name (default search-sst2-quick)")
    args = ap.parse_args()
    if args.step == "run":
        run(args.clone.resolve())
    else:
        write(args.clone.resolve(), args.stem)


if __name__ == "__main__":
    main()
