"""Create or resume an Optuna study and run trials: each trial is one Recipe through the engine.

Objectives: accuracy (max), bytes (min), batch-1 latency (min). The budget becomes trial
constraints. A trial that clearly cannot reach the accuracy floor is stopped half-way and
recorded as pruned; a trial that raises is recorded as failed and the search goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Experiment
from ..engine.measure import predict_logits, task_metrics
from ..engine.pipeline import EngineInputs
from ..errors import ConfigError
from ..recipe import Recipe
from ..session import engine_inputs, read_metrics, run_recipe
from ..teacher import Teacher
from ..tracking import NullTracker, Tracker
from .budget import Budget
from .pareto import Point, best
from .space import SearchSpace

Log = Callable[[str], None]
DIRECTIONS = ["maximize", "minimize", "minimize"]
OBJECTIVES = ("accuracy", "bytes", "latency_ms_b1")
SAMPLERS = ("tpe", "nsga2", "random")
DEFAULT_STORAGE = "sqlite:///autocompress.db"


@dataclass(frozen=True)
class SearchSettings:
    study: str
    space: SearchSpace
    budget: Budget = Budget()
    trials: int = 20
    timeout: float | None = None
    storage: str = DEFAULT_STORAGE
    sampler: str = "tpe"
    seed: int = 0
    out_dir: Path = Path("out")
    early_stop_margin: float = 0.10  # stop when half-way accuracy is this far below the floor
    curve_every: int = 10
    enqueue_starts: bool = True  # begin with the teacher's shape (fp32, int8) and a half-depth student


class EarlyStopped(RuntimeError):
    """Half-way through training, the candidate is clearly below the accuracy floor."""


def make_sampler(name: str, seed: int, trials: int):
    import optuna

    if name == "tpe":
        # multivariate + group: models joint and conditional dimensions; few random start-up trials
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=max(4, min(10, trials // 3)))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(6, min(20, trials // 3)))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler '{name}'; use one of {', '.join(SAMPLERS)}")


def open_study(settings: SearchSettings, create: bool = True):
    """The study by name in its storage; created on first use."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(settings.sampler, settings.seed, settings.trials)
    try:
        if create:
            return optuna.create_study(study_name=settings.study, storage=settings.storage, sampler=sampler,
                                       directions=DIRECTIONS, load_if_exists=True)
        return optuna.load_study(study_name=settings.study, storage=settings.storage, sampler=sampler)
    except KeyError:
        raise ConfigError(f"no study named '{settings.study}' in {settings.storage}; check --study and --storage") from None
    except ValueError as err:
        raise ConfigError(f"study '{settings.study}': {err}") from None
    except Exception as err:  # unreachable database, bad URL
        raise ConfigError(f"storage '{settings.storage}' cannot be opened ({str(err).splitlines()[0]}); "
                          "check the URL and that the database is reachable") from None


def starting_points(space: SearchSpace, n_layers: int) -> list[dict[str, Any]]:
    """Sensible first trials: the teacher's shape, the teacher in int8, a half-depth student."""
    teacher = dict(depth=n_layers, heads_keep=1.0, ffn_keep=1.0, vocab_prune=False, prune_ratio=0.0, bits=32,
                   train_steps=0, hidden_mse=0.0)
    points = [teacher, {**teacher, "bits": 8}, {**teacher, "depth": max(1, n_layers // 2)}]
    out = []
    for p in points:
        snapped = space.snap(p)
        if snapped and snapped not in out:
            out.append(snapped)
    return out


@dataclass
class Reference:
    """The teacher measured like any candidate: what ratios and retention are relative to."""

    accuracy: float
    bytes: int
    latency_ms_b1: float
    latency_ms_b32: float

    @classmethod
    def of(cls, m: dict) -> "Reference":
        return cls(m["accuracy"], m["bytes"], m["latency_ms_b1"], m["latency_ms_b32"])


def measure_reference(inputs: EngineInputs, teacher: Teacher, folder: Path, log: Log) -> Reference:
    if not (folder / "metrics.json").is_file():
        log("search: measuring the teacher as the reference (accuracy, bytes, latency)")
        run_recipe(inputs, Recipe(), folder, teacher)
    return Reference.of(read_metrics(folder))


def trial_points(study) -> list[Point]:
    """Completed trials as Pareto points; feasible when every constraint is <= 0."""
    import optuna

    return [
        Point(t.number, t.values[0], t.values[1], t.values[2], all(v <= 0 for v in t.constraints.values()))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    ]


@dataclass
class _Progress:
    total: int
    started: float = field(default_factory=time.time)
    done: int = 0


def run_search(exp: Experiment, settings: SearchSettings, tracker: Tracker | None = None,
               log: Log = lambda _m: None, prepared: tuple[EngineInputs, Teacher] | None = None):
    """Run (or resume) the study until it holds `settings.trials` finished trials or time runs out."""
    import optuna

    tracker = tracker or NullTracker()
    study = open_study(settings)
    inputs, teacher = prepared or engine_inputs(exp, log)
    out = settings.out_dir / settings.study
    ref = measure_reference(inputs, teacher, out / "teacher", log)
    n_layers = len(inputs.teacher.encoder_layers)
    floor = settings.budget.accuracy_floor(ref.accuracy)

    parent = study.user_attrs.get("mlflow_parent_run_id")
    parent = tracker.start_search(
        settings.study,
        {"experiment": exp.model_dump(exclude={"base_dir"}), "space": settings.space.model_dump(mode="json"),
         "budget": settings.budget.to_dict(), "sampler": settings.sampler, "seed": settings.seed},
        {"autocompress.study": settings.study, "autocompress.storage": settings.storage}, parent,
    )
    if parent and "mlflow_parent_run_id" not in study.user_attrs:
        study.set_user_attr("mlflow_parent_run_id", parent)
        tracker.log_metrics(parent, {f"teacher_{k}": v for k, v in ref.__dict__.items()})
    study.set_user_attr("teacher", ref.__dict__)
    study.set_user_attr("budget", settings.budget.to_dict())
    study.set_user_attr("space", settings.space.model_dump(mode="json"))

    if settings.enqueue_starts and not study.trials:
        for params in starting_points(settings.space, n_layers)[: settings.trials]:
            study.enqueue_trial(params, skip_if_exists=True)

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        recipe = settings.space.suggest(trial, n_layers)
        trial.set_user_attr("recipe", recipe.to_dict())
        run = tracker.start_trial(parent, f"trial-{trial.number:04d}", {**recipe.to_dict(), "trial": trial.number})
        if run:
            trial.set_user_attr("mlflow_run_id", run)
        folder = out / f"trial-{trial.number:04d}"
        trial.set_user_attr("folder", str(folder.resolve()))
        hooks = [_curve_logger(tracker, run, settings.curve_every)]
        if floor is not None:
            hooks.append(_early_stop(inputs, floor - settings.early_stop_margin))
        try:
            res = run_recipe(inputs, recipe, folder, teacher, hooks=hooks)
        except EarlyStopped as err:
            tracker.set_tags(run, {"state": "PRUNED", "reason": str(err)})
            tracker.end(run, "KILLED")
            trial.set_user_attr("pruned_reason", str(err))
            raise optuna.TrialPruned(str(err)) from None
        except Exception as err:
            msg = f"{type(err).__name__}: {err}"[:1000]
            trial.set_user_attr("error", msg)
            tracker.set_tags(run, {"state": "FAIL", "error": msg})
            tracker.end(run, "FAILED")
            raise
        m = res.metrics
        cons = settings.budget.constraints(m, ref.accuracy)
        for k, v in cons.items():
            trial.set_constraint(k, v)
        numeric = {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        numeric.update(retention=m["accuracy"] / ref.accuracy, x_smaller=ref.bytes / m["bytes"],
                       x_faster_b1=ref.latency_ms_b1 / m["latency_ms_b1"])
        tracker.log_metrics(run, numeric)
        tracker.set_tags(run, {"state": "COMPLETE", "feasible": str(all(v <= 0 for v in cons.values())),
                               "runtime": m["runtime"]})
        tracker.end(run, "FINISHED")
        trial.set_user_attr("metrics", {k: m[k] for k in m if k not in ("runtime_note",)})
        return m["accuracy"], float(m["bytes"]), m["latency_ms_b1"]

    finished = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, settings.trials - len(finished))
    progress = _Progress(total=settings.trials, done=len(finished))

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        progress.done += 1
        pts = trial_points(study)
        pick = best(pts)
        feasible = sum(p.feasible for p in pts)
        elapsed = time.time() - progress.started
        what = trial.state.name
        if trial.values:
            what += f" acc {trial.values[0]:.4f}, {trial.values[1] / 1e6:.2f} MB, {trial.values[2]:.2f} ms"
        elif "error" in trial.user_attrs:
            what += f" ({trial.user_attrs['error'][:120]})"
        best_s = (f"#{pick.key} acc {pick.accuracy:.4f} {pick.bytes / 1e6:.2f} MB {pick.latency_ms:.2f} ms"
                  if pick else "none yet")
        log(f"search: trial {trial.number} {what} | {progress.done}/{progress.total} done, "
            f"{elapsed / 60:.1f} min, {feasible} feasible | best {best_s}")

    if remaining:
        log(f"search: study '{settings.study}' has {len(finished)} finished trials; running {remaining} more "
            f"(budget: {settings.budget.describe()})")
        study.optimize(objective, n_trials=remaining, timeout=settings.timeout, catch=(Exception,),
                       callbacks=[report], gc_after_trial=True)
    return study, ref, parent


def _curve_logger(tracker: Tracker, run: str | None, every: int):
    buf: list[float] = []

    def hook(step: int, total: int, loss: float, _model) -> None:
        buf.append(loss)
        if step % every == 0 or step == total:
            tracker.log_metrics(run, {"train_loss": float(np.mean(buf))}, step=step)
            buf.clear()

    return hook


def _early_stop(inputs: EngineInputs, threshold: float, rows: int = 256):
    """Half-way through training, evaluate on a dev sample; stop when clearly below the floor."""
    dev = inputs.data.dev
    sample = dev.subset(np.arange(min(rows, len(dev))))

    def hook(step: int, total: int, _loss: float, model) -> None:
        if total < 20 or step != total // 2:
            return
        was_training = model.training
        acc = task_metrics(predict_logits(model, sample), sample.labels)["accuracy"]
        model.train(was_training)
        if acc < threshold:
            raise EarlyStopped(f"dev accuracy {acc:.3f} half-way is below {threshold:.3f}")

    return hook
