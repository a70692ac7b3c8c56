"""Helpers shared by the benchmark scripts: timestamped progress lines and provenance lines."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys

import torch


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
        f"- command: `python experiments/{script} {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}; machine: {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores" + (f", {threads} threads used" if threads else "") + f"; torch {torch.__version__}",
    ]
