"""Helpers shared by the benchmark scripts: timestamped progress lines and provenance lines."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys

import torch


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def provenance(script: str, threads: int | None = None) -> list[str]:
    """Markdown lines: the command that produced a results file, when, and on what machine."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?") \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    return [
        f"- command: `python experiments/{script} {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}; machine: {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores" + (f", {threads} threads used" if threads else "") + f"; torch {torch.__version__}",
    ]
