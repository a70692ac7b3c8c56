"""The reference every trial of a study is judged against: the teacher measured like a candidate, and the
majority class; and the study's completed trials as Pareto points. Shared by the search and its report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..data import majority_baseline
from ..engine.errors import ConfigError
from ..engine.measure import evaluation_rows
from ..engine.metrics import Metrics
from ..engine.pipeline import EngineInputs
from ..engine.recipe import Recipe
from ..log import Log
from ..session import read_metrics, run_recipe
from .pareto import Point

PROTOCOL = "validation-v1"  # studies choose on validation rows and store test scores beside them


@dataclass
class Reference:
    """The teacher measured like any candidate (on the same validation rows, the same runtime) and
    the majority-class baseline: what the report's share of the teacher, the budget's score floor,
    the degenerate flag and the size ratios are relative to. Speed ratios are not: a report times
    the teacher again beside the candidates. Stored in the study's user attribute "teacher"."""

    metric: str
    score: float  # validation
    test_score: float
    bytes: int
    weight_bytes: int
    latency_ms_b1: float  # measured when the study was created: shown, never divided by
    latency_ms_b32: float
    majority_label: str
    majority_score: float  # predicting majority_label for every validation row
    majority_test_score: float
    validation_rows: int
    test_rows: int
    constant: str = "majority class"  # what the constant predictor is (`Task.constant`)

    @classmethod
    def of(cls, m: Metrics, inputs: EngineInputs) -> Reference:
        rows = evaluation_rows(inputs.data, inputs.measure.eval_subset)  # what candidates score on
        label, base = majority_baseline(inputs.data, rows)
        return cls(m.metric, m.score, m.test_score, m.bytes, m.weight_bytes, m.latency_ms_b1, m.latency_ms_b32,
                   label, base["validation"][m.metric], base["test"][m.metric], len(rows), len(inputs.data.test),
                   inputs.data.task.constant)

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    def above_majority(self, score: float) -> float:
        """The degenerate constraint: <= 0 when `score` beats the constant predictor (the majority class for
        a classifier) on the validation rows, > 0 when it is no better (ties included)."""
        return self.majority_score + 1e-9 - score

    def degenerate(self, score: float) -> bool:
        return self.above_majority(score) > 0


def measure_reference(inputs: EngineInputs, folder: Path, log: Log) -> Reference:
    if not (folder / "metrics.json").is_file():
        log("search: measuring the teacher as the reference (scores, bytes, latency)")
        run_recipe(inputs, Recipe(), folder)
    return Reference.of(read_metrics(folder), inputs)


def stored_reference(study) -> Reference:
    """The reference a study stored; a clear error for studies made before validation splits."""
    if study.user_attrs.get("protocol") != PROTOCOL or "teacher" not in study.user_attrs:
        raise ConfigError(f"study '{study.study_name}' has no teacher reference chosen on validation rows (it is "
                          "older, or no search ran yet); run `autocompress search` with a new --study")
    return Reference(**study.user_attrs["teacher"])


def trial_points(study) -> list[Point]:
    """Completed trials as Pareto points; feasible when every constraint is <= 0."""
    import optuna

    return [
        Point(t.number, t.values[0], t.values[1], t.values[2], all(v <= 0 for v in t.constraints.values()),
              bool(t.user_attrs.get("degenerate", False)))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    ]
