"""Baselines: what the teacher gives on each installed runtime with no search at all.

A user who does not search can still quantize the teacher in one line with ONNX Runtime, OpenVINO
(+ NNCF) or torch. Every search measures those alternatives once, before its first trial, exactly as
it measures a trial (`run_recipe` of the teacher's shape at the runtime's fast precision, no training):
scores on the validation and test rows, bytes on disk of what runs, batch-1 latency timed beside the
fp32 teacher inside the same measurement. They are stored under <out>/<study>/baselines/<name>/, so the
report can time them again side by side with the trials, and summed up in the study's user attribute
"baselines". Static int8 calibrates on training rows only (`pipeline.calibration_batches`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

from ..engine.metrics import Metrics
from ..engine.errors import ConfigError
from ..log import Log, silent
from ..engine.recipe import Recipe
from .budget import Budget

ATTR = "baselines"  # the study's user attribute: list of Baseline.to_dict()
BUDGET_ATTR = "budget_from_baselines"  # how a --beat-baselines budget was derived, stored before the first trial


@dataclass(frozen=True)
class BaselineKind:
    """One no-search alternative: the teacher at `bits` on runtime `runtime`."""

    name: str  # what --baselines names it by
    label: str  # what reports call it
    runtime: str  # runtime registry name
    bits: int
    embedding_bits: int | None = None  # None: as `bits` (what the runtime's own quantizer does)
    needs: tuple[str, ...] = ()  # Python packages it runs on

    def recipe(self) -> Recipe:
        return Recipe(runtime=self.runtime, bits=self.bits, embedding_bits=self.embedding_bits)

    def available(self) -> str | None:
        """None when it can run here, else why not (one phrase)."""
        missing = [m for m in self.needs if importlib.util.find_spec(m) is None]
        if missing:
            return f"{', '.join(missing)} not installed"
        if self.bits == 16:
            from ..engine.runtimes import get

            if not get(self.runtime).precision(16).fast_kernel:
                return "this CPU has no bf16 instructions"
        return None


# Each at the runtime's own recommended setting (graph optimizations on; per-channel int8 weights; NNCF's
# transformer preset); ONNX Runtime's thread pool does not busy-wait, for every model alike
# (experiments/results/ort-spinning.md measures what that costs ONNX Runtime).
KINDS: tuple[BaselineKind, ...] = (
    BaselineKind("onnxruntime-int8", "ONNX Runtime dynamic int8", "onnxruntime", 8, needs=("onnxruntime",)),
    BaselineKind("openvino-int8", "OpenVINO + NNCF static int8", "openvino", 8, needs=("openvino", "nncf")),
    BaselineKind("openvino-bf16", "OpenVINO bf16", "openvino", 16, needs=("openvino",)),
    # torch.ao's quantize_dynamic leaves the embedding tables in fp32
    BaselineKind("torch-int8", "torch dynamic int8", "torch", 8, embedding_bits=32),
)


def names() -> tuple[str, ...]:
    return tuple(k.name for k in KINDS)


def select(spec: str) -> tuple[BaselineKind, ...]:
    """`--baselines`: "all" (every kind), "none", or comma-separated names. Unknown names are a ConfigError."""
    spec = spec.strip()
    if spec == "none":
        return ()
    if spec == "all":
        return KINDS
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [w for w in wanted if w not in names()]
    if unknown or not wanted:
        raise ConfigError(f"--baselines {spec!r}: unknown baseline {', '.join(unknown) or '(empty)'}; use all, none "
                          f"or a comma-separated list of {', '.join(names())}")
    return tuple(k for k in KINDS if k.name in wanted)


@dataclass(frozen=True)
class Baseline:
    """One baseline as measured (like a trial, see `Metrics`), and where its model folder is."""

    name: str
    label: str
    runtime: str
    bits: int
    folder: str
    metrics: dict

    @property
    def measured(self) -> Metrics:
        return Metrics.from_dict(self.metrics)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Baseline:
        return cls(**d)


def measure_baselines(inputs, kinds: tuple[BaselineKind, ...], root: Path, log: Log = silent) -> list[Baseline]:
    """Build and measure every available kind into root/<name>/ (reused when already there). A kind that
    cannot run here, or fails, is left out with one log line: baselines never stop a search."""
    from ..session import read_metrics, run_recipe

    out = []
    for kind in kinds:
        why = kind.available()
        if why:
            log(f"baselines: {kind.label} left out ({why})")
            continue
        folder = root / kind.name
        try:
            if not (folder / "metrics.json").is_file():
                log(f"baselines: {kind.label} of the teacher (no search; scored, sized and timed like a trial)")
                run_recipe(inputs, kind.recipe(), folder, source=f"baseline {kind.name}")
            m = read_metrics(folder)
        except Exception as err:  # noqa: BLE001 - a runtime that fails here is reported, not fatal
            log(f"baselines: {kind.label} left out ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
            continue
        out.append(Baseline(kind.name, kind.label, kind.runtime, kind.bits, str(folder.resolve()), m.to_dict()))
    return out


def stored_baselines(study) -> list[Baseline]:
    return [Baseline.from_dict(d) for d in study.user_attrs.get(ATTR, [])]


def beat_budget(baselines: list[Baseline], latency_margin: float, ratios: dict[str, float] | None = None) -> dict:
    """The budget "dominate every baseline": fewer bytes than the smallest, a batch-1 latency at most
    `latency_margin` times the fastest's (as a ratio to the fp32 teacher, so trials timed later compare), and a
    validation score at least the best one's. `ratios`: each baseline's batch-1 ms over the teacher's, timed
    side by side (`time_beside_teacher`); default, the ratio each baseline measured beside the teacher alone."""
    if not baselines:
        raise ConfigError("--beat-baselines needs baselines, and none could be measured (see the lines above); "
                          "drop --beat-baselines or install onnxruntime / openvino")
    if not 0 < latency_margin <= 1:
        raise ConfigError(f"--latency-margin {latency_margin}: give a fraction in (0, 1]")
    ms = {b.name: b.measured for b in baselines}
    ratio = ratios if ratios is not None else {n: m.latency_ratio_b1 for n, m in ms.items()}
    if any(ratio.get(n) is None for n in ms):
        raise ConfigError("--beat-baselines: the baselines were measured before trials timed the teacher beside "
                          "them; start a new --study")
    smallest = min(ms, key=lambda n: ms[n].bytes)
    fastest = min(ms, key=lambda n: ratio[n])
    best = max(ms, key=lambda n: ms[n].score)
    budget = Budget(max_bytes=ms[smallest].bytes - 1, max_latency_ratio=round(latency_margin * ratio[fastest], 4),
                    min_score=ms[best].score)
    return {"budget": budget.to_dict(), "smallest": smallest, "fastest": fastest, "best": best,
            "latency_margin": latency_margin, "ratios": ratio}


def time_beside_teacher(teacher_folder: Path, baselines: list[Baseline], *, seq_len: int, threads: int,
                        rounds: int) -> dict[str, float]:
    """Each baseline's batch-1 ms over the fp32 teacher's, all timed side by side in `rounds` rounds of
    rotating order: one moment of the machine for every baseline, not each its own."""
    from .remeasure import side_by_side

    folders = {"teacher": Path(teacher_folder), **{b.name: Path(b.folder) for b in baselines}}
    ms = side_by_side(folders, seq_len=seq_len, batch_sizes=(1,), threads=threads, rounds=rounds)
    return {b.name: ms[b.name][1] / ms["teacher"][1] for b in baselines}


def merge_budget(given: Budget, derived: Budget) -> Budget:
    """The user's own limits win; the derived ones fill in the rest."""
    mine = given.to_dict()
    return Budget(**{**derived.to_dict(), **mine})


def log_baselines(tracker, parent: str | None, baselines: list[Baseline], splits) -> None:
    """One MLflow run per baseline under the search's run, tagged `baseline = 'true'`, with the metrics a trial has."""
    for b in baselines:
        run = tracker.start_trial(parent, f"baseline-{b.name}", {"baseline": b.name, "runtime": b.runtime,
                                                                 "bits": b.bits})
        if run is None:
            continue
        tracker.log_datasets(run, splits)
        tracker.log_metrics(run, b.measured.numbers())
        tracker.set_tags(run, {"baseline": "true", "autocompress.kind": "baseline", "state": "COMPLETE",
                               "runtime": b.measured.runtime,
                               "label": b.label, "chosen_on": "validation"})
        tracker.end(run, "FINISHED")


def prepare_baselines(study, settings, inputs, tracker, parent: str | None, splits, log: Log = silent) -> list[Baseline]:
    """The study's baselines: measured once, by the process that prepares the search, before any trial;
    later processes (a resumed search, workers) read them from the study."""
    if ATTR in study.user_attrs:
        return stored_baselines(study)
    kinds = select(settings.baselines)
    if not kinds:
        study.set_user_attr(ATTR, [])
        return []
    found = measure_baselines(inputs, kinds, Path(settings.out_dir) / settings.study / "baselines", log)
    for b in found:
        m = b.measured
        log(f"baselines: {b.label}: validation {m.metric} {m.score:.4f}, test {m.test_score:.4f}, "
            f"{m.bytes / 1e6:.2f} MB, batch-1 {m.latency_ms_b1:.2f} ms ({m.latency_ratio_b1:.2f} x the fp32 teacher "
            "timed beside it)")
    log_baselines(tracker, parent, found, splits)
    study.set_user_attr(ATTR, [b.to_dict() for b in found])
    return found


def with_baseline_budget(study, settings, baselines: list[Baseline], log: Log = silent, *,
                         teacher_folder: Path | None = None, measure=None):
    """`settings` with the budget --beat-baselines derives (stored in the study before its first trial, so a
    resumed search or a worker keeps the budget its first trials were judged by); as given without it.
    With `teacher_folder` (and the experiment's `measure` settings), the latency limit comes from the teacher and
    the baselines timed side by side now (`settings.confirm_rounds` rounds)."""
    from dataclasses import replace

    if not settings.beat_baselines:
        return settings
    derived = study.user_attrs.get(BUDGET_ATTR)
    if derived is None:
        if study.trials:
            raise ConfigError(f"--beat-baselines: study '{settings.study}' already has trials judged by another "
                              "budget; start a new --study")
        ratios = None
        if teacher_folder is not None and baselines:
            log(f"budget: timing the teacher and {len(baselines)} baselines side by side at batch 1 "
                f"({settings.confirm_rounds} rounds, the order rotating)")
            ratios = time_beside_teacher(teacher_folder, baselines, seq_len=measure.seq_len, threads=measure.threads,
                                         rounds=settings.confirm_rounds)
        derived = beat_budget(baselines, settings.latency_margin, ratios)
        study.set_user_attr(BUDGET_ATTR, derived)
    budget = merge_budget(settings.budget, Budget(**derived["budget"]))
    log(f"budget: beat every baseline: fewer bytes than {derived['smallest']}, batch-1 latency <= "
        f"{derived['latency_margin']:g} x {derived['fastest']}'s (as a ratio to the fp32 teacher timed beside "
        f"it), validation score >= {derived['best']}'s: {budget.describe()}")
    return replace(settings, budget=budget)


def baseline_lead(study, baselines: list[Baseline]) -> tuple[str, int] | None:
    """(runtime, bits) of the fastest baseline of a --beat-baselines budget: where its first trials start."""
    derived = study.user_attrs.get(BUDGET_ATTR)
    found = {b.name: b for b in baselines}
    if not derived or derived.get("fastest") not in found:
        return None
    b = found[derived["fastest"]]
    return b.runtime, b.bits
