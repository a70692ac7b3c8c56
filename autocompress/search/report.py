"""The search report: Pareto table, hypervolume, recommended pick and knee, and a Pareto plot.

Candidates are chosen on validation rows; the table shows their test scores beside, only to
report them. Speed ratios come from timing the teacher and the front side by side in this
process (`remeasure.side_by_side`), never from the teacher's time stored when the study began.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..engine._io import write_json
from ..describe import summarize
from ..engine.metrics import Metrics, retention
from ..engine.errors import ArtifactError
from ..progress import duration
from .pareto import (
    Point,
    best,
    front,
    knee,
    normalized_hypervolume,
    score_size_hypervolume,
)
from .baselines import BUDGET_ATTR, Baseline, stored_baselines
from .budget import Budget
from .confirm import LATENCY_LIMITS, Rival, Verdict, confirmed_within, highest, verdict
from .reference import Reference, stored_reference, trial_points

TEACHER = "teacher"
BASELINE_KEY = "baseline:"  # latency_b1 keys of baselines: "baseline:<name>"
RECOMMENDED_ATTR = "recommended"  # the study's user attribute: the last report's pick and how it was confirmed


def baseline_key(name: str) -> str:
    return BASELINE_KEY + name


@dataclass
class Report:
    study: str
    points: list[Point]
    front: list[Point]  # of the points better than the majority class
    hypervolume: float
    best: Point | None
    knee: Point | None
    teacher: Reference
    budget: str
    counts: dict[str, int]
    recipes: dict[int, dict]
    measured: dict[int, Metrics]  # each completed trial's stored record (test scores, weight bytes)
    latency_b1: dict[int | str, float] | None  # side by side: front trials and TEACHER; None when skipped
    elastic: dict | None = None  # the elastic network the trials were cut from (id, steps, train_seconds), if any
    baselines: list[Baseline] = field(default_factory=list)  # the teacher on each runtime, no search
    verdict: Verdict | None = None  # the pick against the baselines (None: no baselines)
    confirm_rounds: int = 0  # side-by-side rounds the pick was confirmed in (0: not confirmed)
    # resident / peak bytes each model adds to a fresh process (`autocompress.memory`), by latency_b1's keys;
    # None when not measured, a key missing when its folder could not be loaded
    memory: dict[int | str, dict[str, int]] | None = None
    latency_limit_ms: float | None = None  # the confirmed latency limit from the baselines timed in the same rounds
    confirmed_within: frozenset[int] | None = None  # front trials within budget on the side-by-side times

    def resident_mb(self, key: int | str) -> str:
        got = (self.memory or {}).get(key)
        return "—" if got is None else f"{got['resident'] / 1e6:.0f} / {got['peak'] / 1e6:.0f}"

    @property
    def degenerate(self) -> list[Point]:
        return [p for p in self.points if p.degenerate]

    def x_faster(self, p: Point) -> float | None:
        if self.latency_b1 is None:
            return None
        return self.latency_b1[TEACHER] / self.latency_b1[p.key]

    def markdown(self) -> str:
        t, metric = self.teacher, self.teacher.metric
        share = (lambda s: f"{retention(s, t.score):.1%}") if t.score > 0 else (lambda s: "n/a")
        if self.latency_b1 is not None:
            speed = (f"- latency: the teacher, the baselines and the front timed side by side in one process just now, "
                     f"the order rotating every round (batch 1: teacher {self.latency_b1[TEACHER]:.2f} ms); x faster "
                     "is that ratio")
            hv_text = "1 - score, bytes / teacher, side-by-side latency / teacher; reference 1, 2, 2"
        else:
            speed = ("- latency: not re-measured (--no-remeasure): the ms are each trial's own, taken at different "
                     "times, so no speed ratio is given")
            hv_text = "1 - score, bytes / teacher; reference 1, 2 (latency left out: not re-measured)"
        lines = [
            f"# Search report: study `{self.study}`",
            "",
            f"- chosen on **validation** rows ({t.validation_rows}); **test** rows ({t.test_rows}) are only reported, "
            "never used to choose",
            f"- metric: {metric}",
            "- trials: " + ", ".join(f"{v} {k.lower()}" for k, v in self.counts.items())
            + (f"; {len(self.degenerate)} degenerate (no better than the {t.constant}, excluded from the front)"
               if self.degenerate else ""),
            f"- budget: {self.budget or 'none'}",
            f"- teacher: validation {metric} {t.score:.4f}, test {metric} {t.test_score:.4f}, {t.bytes:,} bytes "
            f"(weights file {t.weight_bytes:,})",
            f"- {t.constant}" + (f" ('{t.majority_label}' for every row)" if t.majority_label else "")
            + f": validation {metric} {t.majority_score:.4f}, "
            f"test {metric} {t.majority_test_score:.4f}",
            *self._elastic_lines(),
            speed,
            f"- hypervolume of the front ({hv_text}): **{self.hypervolume:.4f}**",
            *([f"- latency limit confirmed side by side: at most {self.latency_limit_ms:.2f} ms at batch 1, the "
               "budget's margin times the fastest baseline timed in the same rounds"]
              if self.latency_limit_ms is not None else []),
            "- recommended (highest validation score within budget"
            + (f"; latency confirmed side by side over {self.confirm_rounds} rounds" if self.confirm_rounds else "")
            + "): " + (f"**trial {self.best.key}**" if self.best else "none: no trial met the budget"),
            "- knee (balanced trade-off): " + (f"trial {self.knee.key}" if self.knee else "none"),
            "",
            (f"| trial | validation {metric} | test {metric} | % of teacher (validation) | bytes | weights file | "
             "x smaller | batch-1 ms | x faster | resident / peak MB | within budget | recipe |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in self.front:
            mark = " (best)" if self.best and p.key == self.best.key else ""
            mark += " (knee)" if self.knee and p.key == self.knee.key else ""
            m = self.measured.get(p.key)
            test = "—" if m is None or m.test_score is None else f"{m.test_score:.4f}"
            weights = "—" if m is None else f"{m.weight_bytes:,}"
            ms = self.latency_b1[p.key] if self.latency_b1 is not None else p.latency_ms
            fast = self.x_faster(p)
            lines.append(
                f"| {p.key}{mark} | {p.score:.4f} | {test} | {share(p.score)} | {int(p.bytes):,} | {weights} | "
                f"{t.bytes / p.bytes:.1f} | {ms:.2f} | {'—' if fast is None else f'{fast:.2f}'} | "
                f"{self.resident_mb(p.key)} | {'yes' if self.within(p) else 'no'} | "
                f"{summarize(self.recipes.get(p.key, {}))} |"
            )
        lines += self._baseline_lines()
        return "\n".join(lines) + "\n"

    def within(self, p: Point) -> bool:
        """Within budget: on the side-by-side times when the pick was confirmed, else as the trial measured."""
        return p.key in self.confirmed_within if self.confirmed_within is not None else p.feasible

    def to_dict(self) -> dict:
        """The report's numbers as plain data (report.json): every front trial and baseline with its
        validation and test score, bytes, batch-1 ms (side by side when timed so) and memory; the picks and
        the verdict."""
        def trial(p: Point) -> dict:
            m = self.measured.get(p.key)
            return {"trial": p.key, "score": p.score, "test_score": None if m is None else m.test_score,
                    "bytes": int(p.bytes), "latency_ms_b1": self._ms(p.key, p.latency_ms),
                    "own_latency_ms_b1": p.latency_ms, "feasible": p.feasible, "within_budget": self.within(p),
                    "recipe": self.recipes.get(p.key, {}), "runtime": None if m is None else m.runtime, "memory": (self.memory or {}).get(p.key)}

        def base(b: Baseline) -> dict:
            m = b.measured
            return {"name": b.name, "label": b.label, "runtime": m.runtime, "score": m.score,
                    "test_score": m.test_score, "bytes": m.bytes,
                    "latency_ms_b1": self._ms(baseline_key(b.name), m.latency_ms_b1),
                    "own_latency_ms_b1": m.latency_ms_b1, "memory": (self.memory or {}).get(baseline_key(b.name))}

        t = self.teacher
        return {
            "study": self.study, "metric": t.metric, "budget": self.budget, "counts": self.counts,
            "teacher": {**t.to_dict(), "latency_ms_b1_side_by_side": (self.latency_b1 or {}).get(TEACHER),
                        "memory": (self.memory or {}).get(TEACHER)},
            "confirm_rounds": self.confirm_rounds, "hypervolume": self.hypervolume,
            "latency_limit_ms": self.latency_limit_ms,
            "recommended": self.best.key if self.best else None, "knee": self.knee.key if self.knee else None,
            "front": [trial(p) for p in self.front], "baselines": [base(b) for b in self.baselines],
            "verdict": None if self.verdict is None else {
                **asdict(self.verdict), "dominates_all": self.verdict.dominates_all,
                "dominates_all_on_test": self.verdict.dominates_all_on_test},
            "verdict_lines": self.verdict_lines(), "elastic": self.elastic,
        }

    def _ms(self, key: int | str, stored: float) -> float:
        return self.latency_b1[key] if self.latency_b1 is not None and key in self.latency_b1 else stored

    def _baseline_lines(self) -> list[str]:
        if not self.baselines:
            return []
        t, metric = self.teacher, self.teacher.metric
        timed = "side by side with the teacher and the front" if self.latency_b1 is not None else \
            "each as measured before the search"
        lines = ["", "## Baselines: the teacher on each runtime, no search", "",
                 f"Scored like the trials; batch-1 ms {timed}.", "",
                 f"| baseline | runtime | validation {metric} | test {metric} | bytes | x smaller | batch-1 ms | "
                 "x faster | resident / peak MB |", "|---|---|---|---|---|---|---|---|---|"]
        for b in self.baselines:
            m = b.measured
            ms = self._ms(baseline_key(b.name), m.latency_ms_b1)
            fast = "—" if self.latency_b1 is None else f"{self.latency_b1[TEACHER] / ms:.2f}"
            test = "—" if m.test_score is None else f"{m.test_score:.4f}"
            lines.append(f"| {b.label} | {m.runtime} | {m.score:.4f} | {test} | {m.bytes:,} | "
                         f"{t.bytes / m.bytes:.1f} | {ms:.2f} | {fast} | {self.resident_mb(baseline_key(b.name))} |")
        if self.memory is not None:
            lines += ["", (f"Resident / peak MB: what each model adds to a fresh process (after the runtime libraries "
                           f"are imported) once loaded and run on one batch of 32 x 64 tokens; the fp32 teacher on "
                           f"torch: {self.resident_mb(TEACHER)}.")]
        lines += ["", *self.verdict_lines()]
        return lines

    def verdict_lines(self) -> list[str]:
        """The verdict in words: does the pick dominate every baseline (validation, then test), and, when no
        trial dominates the best baseline, the one line that says so and names the closest."""
        v = self.verdict
        if v is None or not v.rivals:
            return []
        labels = {b.name: b.label for b in self.baselines}
        timing = "side-by-side batch-1 latency" if self.latency_b1 is not None else "batch-1 latency as measured"
        out = []

        def listed(names: tuple[str, ...]) -> str:
            missed = [labels[n] for n in v.rivals if n not in names]
            return "every baseline" if not missed else (
                f"{len(names)} of {len(v.rivals)} baselines (not {', '.join(missed)})")

        if v.pick is None:
            out.append("- the pick against the baselines: no pick (no trial within budget)")
        else:
            out.append(f"- **trial {v.pick} dominates {listed(v.beaten)}** on validation {self.teacher.metric}, bytes "
                       f"and {timing}" if v.dominates_all else
                       f"- trial {v.pick} dominates {listed(v.beaten)} on validation {self.teacher.metric}, bytes and "
                       f"{timing}")
            out.append(f"- on the test rows (only reported): trial {v.pick} dominates {listed(v.beaten_test)}")
        if v.outside is not None:
            out.append(f"- outside the budget, trial {v.outside} dominates {listed(v.outside_beaten)} on validation "
                       f"{self.teacher.metric}, bytes and {timing}, and {listed(v.outside_beaten_test)} on the test "
                       "rows; it is not within the budget's limits (see the table)")
        if v.instead is not None:
            out.append(f"- **trial {v.instead} dominates {listed(v.instead_beaten)}** on validation {self.teacher.metric}, "
                       f"bytes and {timing}, and {listed(v.instead_beaten_test)} on the test rows (within budget; the "
                       f"pick scores higher on validation): `export --pick {v.instead}` exports it")
        if not v.best_beaten_by and v.best_rival is not None:
            out.append(f"- **no trial dominates the best baseline** ({labels[v.best_rival]}) on validation; closest: "
                       + (self._closest(v.closest, v.best_rival) if v.closest is not None else "none (empty front)"))
        return out

    def _closest(self, key: int, rival: str) -> str:
        p = next(q for q in self.front if q.key == key)
        b = next(b for b in self.baselines if b.name == rival).measured
        return (f"trial {key} ({self.teacher.metric} {p.score:.4f} vs {b.score:.4f}, {p.bytes / 1e6:.2f} vs "
                f"{b.bytes / 1e6:.2f} MB, batch-1 {self._ms(key, p.latency_ms):.2f} vs "
                f"{self._ms(baseline_key(rival), b.latency_ms_b1):.2f} ms)")

    def _elastic_lines(self) -> list[str]:
        e = self.elastic
        if not e:
            return []
        line = (f"- elastic network `{e['id']}`: trained once in {duration(e['train_seconds'])} ({e['steps']} steps), "
                "apart from the trials; elastic trials cut their sub-network out of it, and their training time is "
                "only their own recovery steps")
        return [line]


def build_report(study, remeasure: bool = True, confirm_rounds: int | None = None, memory: bool = True) -> Report:
    """The report of a stored study. `remeasure`: time the teacher, the baselines and the front side by side
    now (`confirm_rounds` interleaved rounds, default the search's setting), and confirm the pick on those
    times; without it, each trial's own timing and the pick the search's constraints give."""
    import optuna

    teacher = stored_reference(study)
    baselines = stored_baselines(study)
    pts = trial_points(study)
    on_front = front([p for p in pts if not p.degenerate])
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    recipes = {t.number: t.user_attrs.get("recipe", {}) for t in study.get_trials(deepcopy=False)}
    measured = {t.number: Metrics.from_dict(t.user_attrs["metrics"]) for t in done if "metrics" in t.user_attrs}
    budget = Budget(**study.user_attrs.get("budget", {}))
    rounds = confirm_rounds if confirm_rounds is not None else int(
        study.user_attrs.get("settings", {}).get("confirm_rounds", 5))
    latency = _side_by_side(study, on_front, baselines, max(1, rounds)) if remeasure else None
    if latency is not None:
        timed = [Point(p.key, p.score, p.bytes, latency[p.key], p.feasible) for p in on_front]
        hv = normalized_hypervolume(timed, teacher.bytes, latency[TEACHER])
        others_met = {t.number: all(v <= 0 for k, v in t.constraints.items() if k not in LATENCY_LIMITS)
                      for t in done}
        limit_ms = _rival_limit(study, budget, baselines, latency)
        within = confirmed_within(on_front, others_met, latency, latency[TEACHER], budget, limit_ms)
        pick = highest(on_front, within, latency)
    else:
        hv = score_size_hypervolume(on_front, teacher.bytes)
        pick, limit_ms, within = best(pts), None, None
    ms = latency or {p.key: p.latency_ms for p in pts}
    rivals = [Rival(b.name, b.label, b.measured.score, b.measured.test_score, b.measured.bytes,
                    (latency or {}).get(baseline_key(b.name), b.measured.latency_ms_b1)) for b in baselines]
    tests = {k: m.test_score for k, m in measured.items()}
    mem = _memory(study, on_front, baselines) if remeasure and memory else None
    return Report(
        study=study.study_name, points=pts, front=on_front, hypervolume=hv, best=pick,
        # the knee normalizes each objective over the front, so no reference latency enters it
        knee=knee(pts, teacher.bytes, 1.0), teacher=teacher,
        budget=_budget_text(study.user_attrs.get("budget", {}), teacher.metric), counts=counts, recipes=recipes,
        measured=measured, latency_b1=latency, elastic=study.user_attrs.get("elastic"), baselines=baselines,
        verdict=verdict(pick, on_front, tests, ms, rivals) if baselines else None,
        confirm_rounds=max(1, rounds) if latency is not None else 0, memory=mem, latency_limit_ms=limit_ms,
        confirmed_within=within,
    )


def _rival_limit(study, budget: Budget, baselines: list[Baseline], latency: dict) -> float | None:
    """For a --beat-baselines latency limit (not one the user set): the margin times the fastest baseline's
    side-by-side ms in these same rounds; None otherwise."""
    derived = study.user_attrs.get(BUDGET_ATTR)
    if not derived or not baselines or budget.max_latency_ratio is None:
        return None
    if budget.max_latency_ratio != derived["budget"].get("max_latency_ratio"):
        return None  # a ratio of the user's own takes precedence
    return derived["latency_margin"] * min(latency[baseline_key(b.name)] for b in baselines)


def _side_by_side(study, points: list[Point], baselines: list[Baseline], rounds: int) -> dict[int | str, float]:
    from .remeasure import side_by_side

    folders = _folders(study, points, baselines)
    m = study.user_attrs.get("measure", {})
    try:
        ms = side_by_side(folders, seq_len=m.get("seq_len", 64), batch_sizes=(1,), threads=m.get("threads", 2),
                          rounds=rounds)
    except ArtifactError as err:  # e.g. the trials ran on another machine
        raise ArtifactError(f"{err}; report on the machine that holds the model folders, or pass --no-remeasure "
                            "(then without speed ratios)") from None
    return {k: v[1] for k, v in ms.items()}


def _folders(study, points: list[Point], baselines: list[Baseline]) -> dict[int | str, Path]:
    """The model folders of the teacher, the baselines and `points`, by the report's keys."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    folders: dict[int | str, Path] = {TEACHER: Path(study.user_attrs["teacher_folder"])}
    folders.update({baseline_key(b.name): Path(b.folder) for b in baselines})
    folders.update({p.key: Path(trials[p.key].user_attrs["folder"]) for p in points})
    return folders


def _memory(study, points: list[Point], baselines: list[Baseline]) -> dict[int | str, dict[str, int]]:
    """Each model's memory in a fresh process; a folder that is not here or does not load is left out."""
    from ..memory import resident_memory

    threads = study.user_attrs.get("measure", {}).get("threads", 2)
    out: dict[int | str, dict[str, int]] = {}
    for key, folder in _folders(study, points, baselines).items():
        if not folder.is_dir():
            continue
        try:
            out[key] = resident_memory(folder, threads)
        except ArtifactError:
            continue
    return out


def _budget_text(b: dict, metric: str) -> str:
    from .budget import Budget

    return Budget(**b).describe(metric) if b else ""


def plot(report: Report, path: Path) -> Path:
    """Validation score against bytes, colour = batch-1 latency; the front joined, the picks ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    t = report.teacher
    if report.points:
        sc = ax.scatter([p.bytes / 1e6 for p in report.points], [p.score for p in report.points],
                        c=[p.latency_ms for p in report.points], cmap="viridis", s=36,
                        marker="o", edgecolors=["none" if p.feasible else "red" for p in report.points])
        fig.colorbar(sc, ax=ax, label="batch-1 latency (ms, as each trial measured it)")
    f = sorted(report.front, key=lambda p: p.bytes)
    ax.plot([p.bytes / 1e6 for p in f], [p.score for p in f], "k--", lw=0.8, label="Pareto front")
    ax.scatter([t.bytes / 1e6], [t.score], marker="*", s=160, c="black", label="teacher (fp32)")
    for b, mark in zip(report.baselines, "^v<>phH8", strict=False):
        m = b.measured
        ax.scatter([m.bytes / 1e6], [m.score], marker=mark, s=90, facecolors="none", edgecolors="darkorange",
                   linewidths=1.5, label=f"baseline: {b.label}")
    ax.axhline(t.majority_score, color="grey", lw=0.8, ls=":", label=t.constant)
    for pick, style, name in ((report.best, "s", "recommended"), (report.knee, "D", "knee")):
        if pick:
            ax.scatter([pick.bytes / 1e6], [pick.score], marker=style, s=140, facecolors="none",
                       edgecolors="crimson", linewidths=1.5, label=f"{name} (trial {pick.key})")
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk to run the model (MB, log scale)")
    ax.set_ylabel(f"validation {t.metric}")
    ax.set_title(f"study {report.study}: red edge = outside budget or degenerate")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(study, folder: Path, remeasure: bool = True, confirm_rounds: int | None = None,
                 memory: bool = True) -> tuple[Report, Path, Path]:
    rep = build_report(study, remeasure, confirm_rounds, memory)
    # what `export --pick best` exports: the pick of the last report (confirmed side by side unless --no-remeasure)
    study.set_user_attr(RECOMMENDED_ATTR, {"trial": rep.best.key if rep.best else None,
                                           "confirm_rounds": rep.confirm_rounds})
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "report.md"
    png = plot(rep, folder / "pareto.png")
    md.write_text(rep.markdown() + f"\n![Pareto plot]({png.name})\n")
    write_json(folder / "report.json", rep.to_dict())
    return rep, md, png
