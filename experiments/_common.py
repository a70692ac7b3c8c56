"""Helpers shared by the benchmark scripts: timestamped progress lines, provenance lines, candidates
built once into their folder (so that a stopped benchmark resumes), and the header of a results file whose
protocol was committed before the run."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")  # what decides fast kernels


def cpu_line() -> str:
    """The CPU model and which of the flags that decide fast int8 / bf16 kernels it has (from /proc/cpuinfo)."""
    if not os.path.exists("/proc/cpuinfo"):
        return platform.processor() or platform.platform()
    lines = open("/proc/cpuinfo").read().splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    return f"{model} (flags: {' '.join(f for f in FLAGS if f in flags) or 'none of ' + ', '.join(FLAGS)})"


def provenance(script: str, threads: int | None = None) -> list[str]:
    """Markdown lines: the command that produced a results file, when, and on what machine."""
    cpu = cpu_line()
    return [
        f"- command: `{shlex.join(['python', f'experiments/{script}', *sys.argv[1:]])}`",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}; machine: {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores" + (f", {threads} threads used" if threads else "") + f"; torch {torch.__version__}",
    ]


def cached_run(inputs, recipe, folder: Path, name: str, hooks: Sequence = (), start=None):
    """The recipe's Metrics, read from `folder`; built there first (`run_recipe`) unless its metrics.json exists.

    A benchmark stopped half-way keeps what it built, and runs again from there."""
    from autocompress.session import read_metrics, run_recipe

    if (folder / "metrics.json").is_file():
        log(f"{name}: reusing {folder.name}")
    else:
        log(f"{name}: building ({recipe.train_steps} training steps)")
        run_recipe(inputs, recipe, folder, name, start=start, hooks=hooks)
    return read_metrics(folder)


def protocol_state(path: Path) -> tuple[str | None, bool]:
    """The short hash of the last commit that changed `path` (None: never committed, or not in this repository)
    and whether the file differs from it now (changed, or untracked)."""
    def git(*argv: str) -> str:
        got = subprocess.run(["git", *argv, "--", str(path)], cwd=ROOT, capture_output=True, text=True)
        return got.stdout.strip() if got.returncode == 0 else ""

    return git("log", "-1", "--format=%h") or None, bool(git("status", "--porcelain"))


def protocol_header(path: Path, commit: str | None, changed: bool, departures: Sequence[str]) -> list[str]:
    """A results file's opening: the protocol's text verbatim, the commit that fixed it, and every departure."""
    fixed = (f"fixed in commit {commit}" if commit and not changed else
             f"NOT as committed: changed since commit {commit} (a draft run)" if commit else
             "NOT committed (a draft run)")
    return [path.read_text().rstrip("\n"), "", "---", "", f"- protocol above: `{path.name}`, {fixed}",
            "- departures from the protocol: " + ("; ".join(departures) if departures else "none"), ""]
