"""Glue between an Experiment and the engine: prepare the shared inputs once, run recipes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import artifact
from ._io import atomic_dir, write_json
from .config import Experiment
from .engine import techniques
from .engine.distill import StepHook
from .engine.measure import evaluation_rows, predict_logits, task_metrics
from .engine.metrics import Metrics
from .engine.model import Classifier
from .engine.pipeline import EngineInputs, Result, compress
from .errors import ConfigError
from .log import Log, silent
from .progress import Progress
from .recipe import Recipe
from .teacher import Teacher, prepare


def engine_inputs(exp: Experiment, log: Log = silent,
                  progress: Progress | None = None) -> tuple[EngineInputs, Teacher]:
    """The fine-tuned teacher, its cached logits and the tokenized data, ready for candidates.

    progress: how the teacher's fine-tuning and logits show progress (default: from `log`, see `prepare`).
    """
    t = prepare(exp, log, progress)
    tok = t.tokenizer
    unk = tok.unk_token_id if tok.unk_token_id is not None else 0
    rows = evaluation_rows(t.data.validation, exp.measure.eval_subset)
    metric = exp.task.metric
    inputs = EngineInputs(
        teacher=t.model, data=t.data, teacher_logits=t.train_logits,
        special_ids=tuple(int(i) for i in tok.all_special_ids), unk_id=int(unk),
        measure=exp.measure, runtime=exp.runtime, metric=metric, task_files=t.task_files,
        # on the whole validation split, the score measured when the teacher was prepared is reused
        teacher_score=(t.metrics["validation"][metric] if rows is t.data.validation
                       else task_metrics(predict_logits(t.model, rows), rows.labels)[metric]),
    )
    return inputs, t


def check_recipe(recipe: Recipe, inputs: EngineInputs, source: str = "recipe") -> None:
    """Recipe values that depend on the teacher (e.g. layer indices) give a clear error up front."""
    problem = techniques.check(recipe, len(inputs.teacher.encoder_layers))
    if problem:
        raise ConfigError(f"{source}: {problem}")


def run_recipe(inputs: EngineInputs, recipe: Recipe, out: Path, source: str = "recipe",
               start: Classifier | None = None, hooks: Sequence[StepHook] = ()) -> Result:
    """Compress one recipe into folder `out` (written atomically) with recipe.json and metrics.json,
    its retention measured against the teacher on the same validation rows.

    `start`: continue from this student instead of the teacher (a chain of compression steps).
    """
    check_recipe(recipe, inputs, source)
    with atomic_dir(out) as tmp:
        result = compress(inputs, recipe, tmp, start=start, hooks=hooks)
        write_json(tmp / artifact.RECIPE, recipe.to_dict())
        result.metrics = result.metrics.with_teacher(inputs.teacher_score)
        write_json(tmp / artifact.METRICS, result.metrics.to_dict())
    result.folder = out
    return result


def read_metrics(folder: Path) -> Metrics:
    """The metrics.json a run wrote in `folder`."""
    return Metrics.from_dict(artifact.read_json(folder, artifact.METRICS))
