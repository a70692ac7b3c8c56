"""Create or resume an Optuna study and run trials: each trial is one Recipe through the engine.

Objectives: the task's metric on the validation rows (max), bytes (min), batch-1 latency (min).
Test rows are measured and stored with every trial, and never read by the search. The budget
becomes trial constraints, and so does beating the majority class: a candidate no better than
predicting the most frequent label is degenerate, never within budget. A trial that clearly
cannot reach the score floor is stopped half-way, and one that scores below most trials no costlier
at a rung of training steps is stopped there (`fidelity.py`): both are recorded as pruned. A trial
that raises is recorded as failed and the search goes on.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Experiment
from ..elastic_net import ElasticInfo, untrained_note
from ..engine.families import Family
from ..engine.measure import evaluation_rows, predict_logits
from ..engine.metrics import Metrics
from ..engine.pipeline import EngineInputs
from ..engine.errors import ConfigError
from ..log import Log, silent
from ..progress import StepBar, duration, progress_for
from ..engine.recipe import Recipe
from ..session import (
    engine_inputs,
    no_elastic_block,
    run_recipe,
    with_elastic,
)
from ..stopping import Stopped, ended_if_stopped
from ..teacher import Teacher
from ..tracking import NOTE_TAG, NullTracker, SplitInput, Tracker, split_inputs
from .baselines import baseline_lead, prepare_baselines, with_baseline_budget
from .budget import Budget
from .fidelity import (
    COST_ATTR,
    RUNGS_ATTR,
    RungStopped,
    TrialStopped,
    model_cost,
    peer_scores,
    rung_schedule,
    stop_reason,
)
from .fidelity import check as check_rungs
from .pareto import best
from .publish import running_note
from .reference import PROTOCOL, Reference, measure_reference, stored_reference, trial_points
from .recovery import DeadTrialHandler, claim, fail_dead_local_trials, requeue_interrupted, used
from .space import SearchSpace
from .storage import DEFAULT_STORAGE, GRACE_S, HEARTBEAT_S
from .storage import open_study as _open

SAMPLERS = ("tpe", "nsga2", "random")


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
    early_stop_margin: float = 0.10  # stop when the half-way score is this far below the floor
    rung_steps: int = 150  # successive halving at steps rung_steps * eta**k among trials no costlier
    eta: int = 3  # ... keeping the top 1/eta at each rung; 0 here or in rung_steps turns it off
    curve_every: int = 10
    enqueue_starts: bool = True  # begin with the teacher's shape (fp32, int8) and a half-depth student
    heartbeat_s: int = HEARTBEAT_S  # a running trial's heartbeat period
    grace_s: int = GRACE_S  # a trial whose heartbeat is older than this is failed and retried
    baselines: str = "all"  # the teacher on each installed runtime, no search: all, none or names (baselines.py)
    beat_baselines: bool = False  # derive the budget from the baselines before the first trial
    latency_margin: float = 0.9  # ... a batch-1 latency at most this times the fastest baseline's
    confirm_rounds: int = 5  # rounds timing the front, the teacher and the baselines side by side in the report
    memory: bool = True  # the report measures each model's memory in a fresh process

    def __post_init__(self) -> None:
        check_rungs(self.rung_steps, self.eta)
        if not 0 < self.latency_margin <= 1:  # before anything is measured or created
            raise ConfigError(f"--latency-margin {self.latency_margin}: give a fraction in (0, 1]")
        if self.confirm_rounds < 1:
            raise ConfigError(f"--confirm-rounds {self.confirm_rounds}: give at least 1")


class EarlyStopped(TrialStopped):
    """Half-way through training, the candidate is clearly below the score floor."""


def make_sampler(name: str, seed: int, trials: int):
    import optuna

    if name == "tpe":
        # multivariate + group: models joint and conditional dimensions; few random start-up trials
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=max(4, min(10, trials // 3)))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(6, min(20, trials // 3)))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"unknown sampler '{name}'; use one of {', '.join(SAMPLERS)}")


def open_study(settings: SearchSettings, create: bool = True, on_stale=None):
    """The study by name in its storage (created on first use), with trial heartbeats."""
    return _open(settings.study, settings.storage, make_sampler(settings.sampler, settings.seed, settings.trials),
                 create=create, on_stale=on_stale, heartbeat=settings.heartbeat_s, grace=settings.grace_s)


def _techniques_off() -> dict[str, Any]:
    """Every compression technique at its default, which means "off" (distillation settings excluded:
    those stay the sampler's choice); a technique added to the registry joins without an edit here."""
    from ..engine.techniques import TECHNIQUES

    return {k: v for t in TECHNIQUES if t.name not in ("layers", "distillation")
            for k, v in t.Fields().model_dump().items() if v is not None}


def starting_points(space: SearchSpace, n_layers: int, lead: tuple[str, int] | None = None) -> list[dict[str, Any]]:
    """Sensible first trials: the teacher's shape, the teacher in int8, a half-depth student.

    lead: (runtime, bits) of the baseline to beat (the fastest, under --beat-baselines). A student of the
    teacher's depth at that baseline's own precision cannot be faster than it, so the first trials are then
    one layer shallower at that precision, with and without a pruned vocabulary, and a half-depth student
    there, each trained as long as the space allows (the score floor is the best baseline's)."""
    teacher = {**_techniques_off(), "depth": n_layers, "train_steps": 0, "hidden_mse": 0.0, "attention_kl": 0.0}
    if lead is None:
        points = [teacher, {**teacher, "bits": 8}, {**teacher, "depth": max(1, n_layers // 2)}]
    else:
        runtime, bits = lead
        near = {**teacher, "runtime": runtime, "bits": bits, "depth": max(1, n_layers - 1), "train_steps": 10**9}
        points = [near, {**near, "vocab_prune": True}, {**near, "depth": max(1, n_layers // 2)}]
    out = []
    for p in points:
        snapped = space.snap(p)
        if snapped and snapped not in out:
            out.append(snapped)
    return out


@dataclass
class Search:
    """A prepared search: the study, cached data and teacher, the reference, the MLflow parent run."""

    exp: Experiment
    settings: SearchSettings
    study: Any
    inputs: EngineInputs
    teacher: Teacher
    ref: Reference
    parent: str | None
    tracker: Tracker
    splits: tuple[SplitInput, ...]  # the data splits as MLflow run inputs, logged with every run
    elastic: ElasticInfo | None = None  # the elastic network trials cut their sub-networks from, if the space asks


def prepare_search(exp: Experiment, settings: SearchSettings, tracker: Tracker | None = None,
                   log: Log = silent, prepared: tuple[EngineInputs, Teacher] | None = None) -> Search:
    """Create (or load) the study and its MLflow parent run, once, before any worker starts."""
    tracker = tracker or NullTracker()
    elastic = settings.space.offers("elastic", True)
    if elastic and exp.elastic is None:  # before anything is created or trained
        raise no_elastic_block(exp, f"search space '{settings.space.name}'")
    study = open_study(settings, on_stale=DeadTrialHandler(tracker, log))
    stored_exp = study.user_attrs.get("experiment")
    if stored_exp is not None and stored_exp != exp.name:
        raise ConfigError(f"study '{settings.study}' searches experiment '{stored_exp}', not '{exp.name}'; "
                          "pass the same experiment file or another --study")
    inputs, teacher = prepared or engine_inputs(exp, log)
    settings = fitted_to_family(settings, inputs.teacher.family, log)
    info = None
    if elastic:  # trained once, by the process that creates the search; workers read it from the cache
        inputs, info = with_elastic(exp, inputs, teacher, log, source=f"search space '{settings.space.name}'")
        space = settings.space
        note = untrained_note(exp.elastic, inputs.teacher, **{
            name: space.values_of(key) for name, key in
            (("depths", "depth"), ("heads", "heads_keep"), ("ffn", "ffn_keep"), ("bits", "bits"))},
            embedding_bits=[*(space.values_of("embedding_bits") or ()), *(space.values_of("bits") or ())])
        if note:
            log(note)
    teacher_folder = settings.out_dir / settings.study / "teacher"
    ref = (stored_reference(study) if study.trials or "teacher" in study.user_attrs
           else measure_reference(inputs, teacher_folder, log))

    parent = study.user_attrs.get("mlflow_parent_run_id")
    parent = tracker.start_search(
        settings.study,
        {"experiment": exp.model_dump(exclude={"base_dir"}), "space": settings.space.model_dump(mode="json"),
         "budget": settings.budget.to_dict(), "sampler": settings.sampler, "seed": settings.seed,
         **({"elastic_id": info.id, "elastic_steps": info.steps} if info else {})},
        {"autocompress.study": settings.study, "autocompress.storage": settings.storage,
         "autocompress.chosen_on": "validation"}, parent,
    )
    with ended_if_stopped(tracker, parent):  # a signal while baselines are measured ends the run KILLED
        splits = split_inputs(exp, inputs.data)
        tracker.log_datasets(parent, splits)
        found = prepare_baselines(study, settings, inputs, tracker, parent, splits, log)
        settings = with_baseline_budget(study, settings, found, log, teacher_folder=teacher_folder, measure=exp.measure)
        tracker.set_tags(parent, {NOTE_TAG: running_note(settings, exp.task.metric)})
        if parent and "mlflow_parent_run_id" not in study.user_attrs:
            study.set_user_attr("mlflow_parent_run_id", parent)
            study.set_user_attr("tracking_uri", tracker.tracking_uri)
            tracker.log_metrics(parent, {f"teacher_{k}": v for k, v in ref.to_dict().items() if not isinstance(v, str)})
            if info:  # what the elastic network cost, once, apart from the trials
                tracker.log_metrics(parent, {"elastic_train_seconds": info.train_seconds})
        if info:  # for the report; each trial's metrics name the network it was cut from
            study.set_user_attr("elastic", info.to_dict())
            log(f"search: trials cut their sub-networks from elastic network {info.id} (trained once in "
                f"{duration(info.train_seconds)}, {info.steps} steps; not counted in any trial's train_seconds)")
        study.set_user_attr("experiment", exp.name)
        study.set_user_attr("protocol", PROTOCOL)
        if not study.metric_names:  # the dashboard's axis names, instead of "Objective 0/1/2"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental in Optuna
                study.set_metric_names([f"validation {ref.metric}", "bytes", "batch-1 ms"])
        study.set_user_attr("teacher", ref.to_dict())
        if "teacher_folder" not in study.user_attrs:
            study.set_user_attr("teacher_folder", str(teacher_folder.resolve()))
        study.set_user_attr("measure", exp.measure.model_dump(mode="json"))
        study.set_user_attr("budget", settings.budget.to_dict())
        study.set_user_attr("space", settings.space.model_dump(mode="json"))
        study.set_user_attr("settings", {"trials": settings.trials, "sampler": settings.sampler, "seed": settings.seed,
                                         "early_stop_margin": settings.early_stop_margin,
                                         "rung_steps": settings.rung_steps, "eta": settings.eta,
                                         "baselines": settings.baselines, "beat_baselines": settings.beat_baselines,
                                         "latency_margin": settings.latency_margin,
                                         "confirm_rounds": settings.confirm_rounds, "memory": settings.memory})
        if settings.enqueue_starts and not study.trials:
            lead = baseline_lead(study, found) if settings.beat_baselines else None
            for params in starting_points(settings.space, len(inputs.teacher.encoder_layers), lead)[: settings.trials]:
                study.enqueue_trial(params, skip_if_exists=True)
    return Search(exp, settings, study, inputs, teacher, ref, parent, tracker, splits, info)


def fitted_to_family(settings: SearchSettings, family: Family, log: Log = silent) -> SearchSettings:
    """`settings` with the recipe keys the teacher's family cannot take left out of the space, one log line each
    (instead of trials that fail on them)."""
    space = settings.space
    left = [k for k in family.unsupported if k in space.dims or k in space.fixed]
    for key in left:
        log(f"search: '{key}' is left out of search space '{space.name}' for this {family.name} teacher: "
            f"{family.why_not(key)}")
    return replace(settings, space=space.without(left)) if left else settings


def settings_of(study, **overrides) -> SearchSettings:
    """The settings a study was created with (space, budget, trial budget, sampler): what a worker joins."""
    attrs = study.user_attrs
    if "space" not in attrs or "settings" not in attrs:
        raise ConfigError(f"study '{study.study_name}' was not created by `autocompress search`; "
                          "start it with `autocompress search` before adding workers")
    base = dict(study=study.study_name, space=SearchSpace.model_validate(attrs["space"]),
                budget=Budget(**attrs.get("budget", {})), **attrs["settings"])
    base.update({k: v for k, v in overrides.items() if v is not None})
    return SearchSettings(**base)


class _NotRun(RuntimeError):
    """Other workers filled the trial budget while this trial was being created."""


def _objective(search: Search, log: Log = silent, who: str = "search"):
    import optuna

    s, study, tracker, inputs = search.settings, search.study, search.tracker, search.inputs
    n_layers = len(inputs.teacher.encoder_layers)
    floor = s.budget.score_floor(search.ref.score)
    out = s.out_dir / s.study
    bars = progress_for(log)  # each trial's training steps

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        if used(study, before=trial.number) >= s.trials:
            trial.set_user_attr("not_run", "the trial budget was filled by other workers")
            raise _NotRun("the trial budget was filled by other workers")
        claim(trial)
        run = None
        try:  # any error from here on is this trial's own: recorded, counted, the search goes on
            recipe = s.space.suggest(trial, n_layers)
            trial.set_user_attr("recipe", recipe.to_dict())
            run = tracker.start_trial(search.parent, f"trial-{trial.number:04d}",
                                      {**recipe.to_dict(), "trial": trial.number})
            if run:
                trial.set_user_attr("mlflow_run_id", run)
                tracker.log_datasets(run, search.splits)
            folder = out / f"trial-{trial.number:04d}"
            trial.set_user_attr("folder", str(folder.resolve()))
            bar = StepBar(bars, f"{who}: trial {trial.number} training")
            hooks = [_curve_logger(tracker, run, s.curve_every), bar]
            if floor is not None:
                hooks.append(_early_stop(inputs, floor - s.early_stop_margin))
            if rung_schedule(recipe.train_steps, s.rung_steps, s.eta):
                hooks.append(_rung_stop(inputs, study, trial, recipe, tracker, run, s.rung_steps, s.eta))
            with bar:
                res = run_recipe(inputs, recipe, folder, hooks=hooks)
        except (KeyboardInterrupt, Stopped) as stop:  # Ctrl-C or SIGTERM: failed, uncounted, its run KILLED
            trial.set_user_attr("interrupted", getattr(stop, "name", "SIGINT"))
            tracker.set_tags(run, {"state": "FAIL", "error": "interrupted"})
            tracker.end(run, "KILLED")
            raise
        except TrialStopped as err:  # half-way below the floor, or beaten at a rung
            tracker.set_tags(run, {"state": "PRUNED", "reason": str(err)})
            tracker.end(run, "KILLED")
            trial.set_user_attr("pruned_reason", str(err))
            raise optuna.TrialPruned(str(err)) from None
        except Exception as err:
            msg = f"{type(err).__name__}: {err}"[:1000]
            trial.set_user_attr("error", msg)
            try:
                tracker.set_tags(run, {"state": "FAIL", "error": msg})
                tracker.end(run, "FAILED")
            except Exception:  # the tracking store itself may be what failed
                pass
            raise
        m, ref = res.metrics, search.ref
        if s.budget.max_memory_bytes is not None:  # in a fresh process, as a deployment would load it
            m = with_memory(m, res.folder, log, who, trial.number)
        # beating the majority class is a constraint like the budget's: <= 0 means above it
        cons = {**s.budget.constraints(m, ref.score), "above_majority": ref.above_majority(m.score)}
        for k, v in cons.items():
            trial.set_constraint(k, v)
        degenerate = ref.degenerate(m.score)
        trial.set_user_attr("degenerate", degenerate)
        stored = m.to_dict()
        numeric = m.numbers()
        # retention and teacher_score come as run_recipe wrote them to metrics.json (the teacher on the
        # same validation rows); speed ratios are left to reports, which time the teacher alongside
        numeric.update(x_smaller=ref.bytes / m.bytes)
        tracker.log_metrics(run, numeric)
        tracker.set_tags(run, {"state": "COMPLETE", "baseline": "false",
                               "feasible": str(all(v <= 0 for v in cons.values())),
                               "degenerate": str(degenerate), "runtime": m.runtime, "chosen_on": "validation",
                               **({"elastic_id": m.elastic_id} if m.elastic_id else {})})
        tracker.end(run, "FINISHED")
        trial.set_user_attr("metrics", {k: v for k, v in stored.items() if k != "runtime_note"})
        return m.score, float(m.bytes), m.latency_ms_b1

    return objective


def with_memory(m: Metrics, folder: Path, log: Log, who: str, number: int) -> Metrics:
    """`m` with the memory the model in `folder` adds to a fresh process (unmeasured: left None, which the
    memory budget counts as outside it)."""
    from dataclasses import replace

    from ..engine.errors import ArtifactError
    from ..memory import resident_memory

    try:
        got = resident_memory(folder, m.threads)
    except ArtifactError as err:
        log(f"{who}: trial {number}: {err}")
        return m
    return replace(m, resident_bytes=got["resident"], peak_resident_bytes=got["peak"])


def _progress(search: Search, log: Log, started: float, who: str):
    def report(study, trial) -> None:
        if "not_run" in trial.user_attrs:
            return
        pts = trial_points(study)
        pick = best(pts)
        what = trial.state.name
        metric = search.ref.metric
        if trial.values:
            what += f" {metric} {trial.values[0]:.4f}, {trial.values[1] / 1e6:.2f} MB, {trial.values[2]:.2f} ms"
            what += " (degenerate: no better than the majority class)" if trial.user_attrs.get("degenerate") else ""
        elif "error" in trial.user_attrs:
            what += f" ({trial.user_attrs['error'][:120]})"
        best_s = (f"#{pick.key} {metric} {pick.score:.4f} {pick.bytes / 1e6:.2f} MB {pick.latency_ms:.2f} ms"
                  if pick else "none yet")
        log(f"{who}: trial {trial.number} {what} | {used(study, running=False)}/{search.settings.trials} done, "
            f"{(time.time() - started) / 60:.1f} min, {sum(p.feasible for p in pts)} feasible | best {best_s}")

    return report


def run_trials(search: Search, log: Log = silent, who: str = "search") -> int:
    """Run trials until the study's budget is used (other workers' trials count too) or time is up.

    Returns how many trials this process ran.
    """
    import optuna

    s, study = search.settings, search.study
    handler = DeadTrialHandler(search.tracker, log)
    fail_dead_local_trials(study, handler, s.grace_s)  # left RUNNING by a killed process of this host
    done = used(study, running=False)
    if done >= s.trials:
        log(f"{who}: study '{s.study}' already holds {done} finished trials (budget {s.trials}); nothing to run")
        return 0
    log(f"{who}: study '{s.study}' has {done} finished trials; running up to {s.trials - done} more "
        f"(budget: {s.budget.describe(search.ref.metric)}; chosen on {search.ref.validation_rows} validation rows)")
    started, ran = time.time(), 0
    objective, report = _objective(search, log, who), _progress(search, log, started, who)
    while True:
        fail_dead_local_trials(study, handler, s.grace_s)  # another local worker died
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # trials of dead workers elsewhere, past their grace period
        left = None if s.timeout is None else s.timeout - (time.time() - started)
        if used(study) >= s.trials or (left is not None and left <= 0):
            return ran
        if ran >= 2 * s.trials + 10:  # trials keep ending without counting (e.g. the tracking store is down)
            log(f"{who}: stopping after {ran} trials that did not fill the budget; see the failed trials' errors")
            return ran
        try:
            study.optimize(objective, n_trials=1, timeout=left, catch=(Exception,), callbacks=[report],
                           gc_after_trial=True)
        except Stopped as stop:
            for number in requeue_interrupted(study, log, who):
                log(f"{who}: trial {number} was interrupted by {stop.name}; its configuration is queued again")
            stop.resume = (f"study '{s.study}' keeps its {used(study, running=False)} finished trials "
                           f"({s.storage})")
            raise
        ran += 1


def _curve_logger(tracker: Tracker, run: str | None, every: int):
    buf: list[float] = []

    def hook(step: int, total: int, loss: float, _model) -> None:
        buf.append(loss)
        if step % every == 0 or step == total:
            tracker.log_metrics(run, {"train_loss": float(np.mean(buf))}, step=step)
            buf.clear()

    return hook


def _early_stop(inputs: EngineInputs, threshold: float, rows: int = 256):
    """Half-way through training, score a validation sample; stop when clearly below the floor."""
    validation = inputs.data.validation
    sample = validation.subset(np.arange(min(rows, len(validation))))

    def hook(step: int, total: int, _loss: float, model) -> None:
        if total < 20 or step != total // 2:
            return
        was_training = model.training
        score = inputs.data.scores(predict_logits(model, sample), sample)[inputs.metric]
        model.train(was_training)
        if score < threshold:
            raise EarlyStopped(f"validation {inputs.metric} {score:.3f} half-way is below {threshold:.3f}")

    return hook


def _rung_stop(inputs: EngineInputs, study, trial, recipe: Recipe, tracker: Tracker, run: str | None,
               rung_steps: int, eta: int):
    """At each rung (see `fidelity.py`): score the student on the evaluation rows, record the score in the
    trial's "rungs" (and its cost in "rung_cost"), log it, and stop when trials no costlier beat it."""
    import optuna

    rows = evaluation_rows(inputs.data, inputs.measure.eval_subset)  # what candidates score on
    metric, scores = inputs.metric, {}
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    cost: dict[str, float] | None = None
    schedule: set[int] | None = None

    def hook(step: int, total: int, _loss: float, model) -> None:
        nonlocal cost, schedule
        if schedule is None:
            schedule = set(rung_schedule(total, rung_steps, eta))
        if step not in schedule:
            return
        if cost is None:  # as built: every technique applied, the shapes final
            cost = model_cost(model, recipe)
            trial.set_user_attr(COST_ATTR, cost)
        was_training = model.training
        score = inputs.data.scores(predict_logits(model, rows), rows)[metric]
        model.train(was_training)
        scores[str(step)] = score
        trial.set_user_attr(RUNGS_ATTR, dict(scores))
        tracker.log_metrics(run, {f"rung_{metric}": score}, step=step)
        peers = peer_scores(study.get_trials(deepcopy=False, states=states), step, cost, exclude=trial.number)
        reason = stop_reason(metric, score, step, peers, eta)
        if reason:
            raise RungStopped(reason)

    return hook
