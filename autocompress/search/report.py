"""The search report: Pareto table, hypervolume, recommended pick and knee, and a Pareto plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..describe import summarize
from ..engine.metrics import retention
from .pareto import Point, best, front, knee, normalized_hypervolume
from .study import Reference, trial_points


@dataclass
class Report:
    study: str
    points: list[Point]
    front: list[Point]
    hypervolume: float
    best: Point | None
    knee: Point | None
    teacher: Reference
    budget: dict
    counts: dict[str, int]
    recipes: dict[int, dict]

    def markdown(self) -> str:
        t = self.teacher
        lines = [
            f"# Search report: study `{self.study}`",
            "",
            "- trials: " + ", ".join(f"{v} {k.lower()}" for k, v in self.counts.items()),
            f"- budget: {self.budget or 'none'}",
            f"- teacher: accuracy {t.accuracy:.4f}, {t.bytes:,} bytes, batch-1 {t.latency_ms_b1:.2f} ms, "
            f"batch-32 {t.latency_ms_b32:.1f} ms",
            f"- hypervolume of the front (1 - accuracy, bytes / teacher, latency / teacher; "
            f"reference 1, 2, 2): **{self.hypervolume:.4f}**",
            "- recommended (highest accuracy within budget): "
            + (f"**trial {self.best.key}**" if self.best else "none: no trial met the budget"),
            "- knee (balanced trade-off): " + (f"trial {self.knee.key}" if self.knee else "none"),
            "",
            "| trial | accuracy | % of teacher | bytes | x smaller | batch-1 ms | x faster | within budget | recipe |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p in self.front:
            mark = " (best)" if self.best and p.key == self.best.key else ""
            mark += " (knee)" if self.knee and p.key == self.knee.key else ""
            lines.append(
                f"| {p.key}{mark} | {p.accuracy:.4f} | {retention(p.accuracy, t.accuracy):.1%} | {int(p.bytes):,} | "
                f"{t.bytes / p.bytes:.1f} | {p.latency_ms:.2f} | {t.latency_ms_b1 / p.latency_ms:.2f} | "
                f"{'yes' if p.feasible else 'no'} | {summarize(self.recipes.get(p.key, {}))} |"
            )
        return "\n".join(lines) + "\n"


def build_report(study) -> Report:

    stored = study.user_attrs.get("teacher")
    if stored is None:
        from ..errors import ConfigError

        raise ConfigError(f"study '{study.study_name}' has no teacher reference yet; run a search first")
    teacher = Reference(**stored)
    pts = trial_points(study)
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    recipes = {t.number: t.user_attrs.get("recipe", {}) for t in study.get_trials(deepcopy=False)}
    return Report(
        study=study.study_name, points=pts, front=front(pts),
        hypervolume=normalized_hypervolume(front(pts), teacher.bytes, teacher.latency_ms_b1),
        best=best(pts), knee=knee(pts, teacher.bytes, teacher.latency_ms_b1), teacher=teacher,
        budget=_budget_text(study.user_attrs.get("budget", {})), counts=counts, recipes=recipes,
    )


def _budget_text(b: dict) -> str:
    from .budget import Budget

    return Budget(**b).describe() if b else ""


def plot(report: Report, path: Path) -> Path:
    """Accuracy against bytes, colour = batch-1 latency; the front joined, the picks ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    t = report.teacher
    if report.points:
        sc = ax.scatter([p.bytes / 1e6 for p in report.points], [p.accuracy for p in report.points],
                        c=[p.latency_ms for p in report.points], cmap="viridis", s=36,
                        marker="o", edgecolors=["none" if p.feasible else "red" for p in report.points])
        fig.colorbar(sc, ax=ax, label="batch-1 latency (ms)")
    f = sorted(report.front, key=lambda p: p.bytes)
    ax.plot([p.bytes / 1e6 for p in f], [p.accuracy for p in f], "k--", lw=0.8, label="Pareto front")
    ax.scatter([t.bytes / 1e6], [t.accuracy], marker="*", s=160, c="black", label="teacher (fp32)")
    for pick, style, name in ((report.best, "s", "recommended"), (report.knee, "D", "knee")):
        if pick:
            ax.scatter([pick.bytes / 1e6], [pick.accuracy], marker=style, s=140, facecolors="none",
                       edgecolors="crimson", linewidths=1.5, label=f"{name} (trial {pick.key})")
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk (MB, log scale)")
    ax.set_ylabel("dev accuracy")
    ax.set_title(f"study {report.study}: red edge = outside budget")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(study, folder: Path) -> tuple[Report, Path, Path]:
    rep = build_report(study)
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "report.md"
    png = plot(rep, folder / "pareto.png")
    md.write_text(rep.markdown() + f"\n![Pareto plot]({png.name})\n")
    return rep, md, png
