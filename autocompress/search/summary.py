"""The lines a finished search ends with: how long it took and where everything went."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..progress import duration
from ..tracking import DEFAULT_TRACKING_URI
from .report import Report
from .storage import DEFAULT_STORAGE


def search_summary(report: Report, *, storage: str, out_dir: Path, report_md: Path, plot_png: Path,
                   tracking_uri: str | None, parent_run: str | None, seconds: float,
                   who: str = "search") -> list[str]:
    """One line each: time and trial counts, the study, the report, the trial folders, MLflow, exporting."""
    study = report.study
    counts = ", ".join(f"{n} {state.lower()}" for state, n in report.counts.items()) or "no trials"
    store = ["--storage", storage] if storage != DEFAULT_STORAGE else []
    tracked = (["--tracking-uri", tracking_uri]
               if tracking_uri is not None and tracking_uri != DEFAULT_TRACKING_URI else [])
    lines = [
        f"{who}: finished in {duration(seconds)}; trials of study '{study}': {counts}",
        f"{who}:   study     '{study}' in {storage} (run the same command again to resume or add trials)",
        f"{who}:   report    {report_md} and {plot_png}",
        (f"{who}:   trials    {Path(out_dir) / study}/trial-NNNN/ (model, recipe.json, metrics.json of each "
         "trial this machine ran)"),
        f"{who}:   MLflow    " + (f"{tracking_uri}, parent run {parent_run}" if tracking_uri and parent_run
                                  else "off (nothing tracked)"),
    ]
    if report.elastic:
        e = report.elastic
        lines.append(f"{who}:   elastic   network {e['id']} in {e['folder']}, trained once in "
                     f"{duration(e['train_seconds'])} ({e['steps']} steps), not counted in the trials")
    for line in report.verdict_lines():  # the pick against the baselines, in words
        lines.append(f"{who}:   baselines {line.removeprefix('- ').replace('**', '')}")
    export = shlex.join(["autocompress", "export", "--study", study, *store, *tracked])
    out = shlex.quote(f"export/{study}")
    if report.best is not None:
        lines.append(f"{who}:   export    {export} --pick best --out {out}  (trial {report.best.key})")
    else:
        lines.append(f"{who}:   export    no trial is within budget and above the majority class yet; any "
                     f"completed trial: {export} --pick <trial number> --out {out}")
    return lines
