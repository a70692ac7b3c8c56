"""Glue between an Experiment and the engine: prepare the shared inputs once, run recipes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from . import elastic_net
from .engine import artifact
from .engine._io import atomic_dir, write_json
from .config import Experiment
from .engine import techniques
from .engine.device import for_training
from .engine.distill import StepHook
from .engine.measure import evaluation_rows, predict_logits
from .engine.metrics import Metrics
from .engine.model import Classifier
from .engine.pipeline import EngineInputs, Result, compress
from .engine.errors import ConfigError
from .log import Log, silent
from .progress import Progress
from .engine.recipe import Recipe
from .teacher import Teacher, prepare


def no_elastic_block(exp: Experiment, source: str) -> ConfigError:
    return ConfigError(f"{source}: elastic: true starts from the task's elastic network, but experiment "
                       f"'{exp.name}' has no `elastic:` block; add one to the experiment file (e.g. "
                       "`elastic: {steps: 2000}`)")


def engine_inputs(exp: Experiment, log: Log = silent, progress: Progress | None = None, *,
                  elastic: bool = False, source: str = "recipe") -> tuple[EngineInputs, Teacher]:
    """The fine-tuned teacher, its cached logits and the tokenized data, ready for candidates.

    progress: how the teacher's fine-tuning and logits show progress (default: from `log`, see `prepare`).
    elastic: also the task's elastic network (trained once, then from the cache), for recipes with
        `elastic: true`; `source` names what asks for it in the error when the experiment has no block.
    """
    if elastic and exp.elastic is None:
        raise no_elastic_block(exp, source)
    t = prepare(exp, log, progress)
    if exp.elastic is not None:  # a teacher-dependent problem of the block is one line, needed now or not
        problem = exp.elastic.check(len(t.model.encoder_layers))
        if problem:
            raise ConfigError(problem)
    tok = t.tokenizer
    unk = tok.unk_token_id if tok.unk_token_id is not None else 0
    rows = evaluation_rows(t.data, exp.measure.eval_subset)
    metric = exp.task.metric
    device, bf16 = for_training(exp.train.device, exp.train.precision)
    inputs = EngineInputs(
        teacher=t.model, data=t.data, teacher_logits=t.train_logits,
        special_ids=tuple(int(i) for i in tok.all_special_ids), unk_id=int(unk),
        measure=exp.measure, runtime=exp.runtime, metric=metric, task_files=t.task_files,
        train_device=device, train_bf16=bf16,
        # on the whole validation split, the score measured when the teacher was prepared is reused
        teacher_score=(t.metrics["validation"][metric] if rows is t.data.validation
                       else t.data.scores(predict_logits(t.model, rows), rows)[metric]),
    )
    if elastic:
        inputs, _info = with_elastic(exp, inputs, t, log, progress, source)
    return inputs, t


def with_elastic(exp: Experiment, inputs: EngineInputs, teacher: Teacher, log: Log = silent,
                 progress: Progress | None = None,
                 source: str = "recipe") -> tuple[EngineInputs, elastic_net.ElasticInfo]:
    """`inputs` with the task's elastic network (trained and cached on first use), and what its cache
    records (id, steps, training seconds). Inputs that hold it already are returned as they are."""
    if exp.elastic is None:
        raise no_elastic_block(exp, source)
    if inputs.elastic is not None and inputs.elastic_id is not None:
        return inputs, elastic_net.read_info(elastic_net.folder_of(exp, inputs.elastic_id))
    net = elastic_net.prepare(exp, teacher, log, progress)
    return replace(inputs, elastic=net.model, elastic_id=net.info.id), net.info


def elastic_note(exp: Experiment, inputs: EngineInputs, recipe: Recipe) -> str | None:
    """A line when an elastic recipe's sub-network is of a shape the elastic network was not trained on."""
    if not recipe.elastic or exp.elastic is None:
        return None
    depth = len(recipe.layers) if recipe.layers is not None else len(inputs.teacher.encoder_layers)
    return elastic_net.untrained_note(exp.elastic, inputs.teacher, depths=[depth], heads=[recipe.heads_keep],
                                      ffn=[recipe.ffn_keep], bits=[recipe.bits], embedding_bits=[recipe.emb_bits])


def check_recipe(recipe: Recipe, inputs: EngineInputs, source: str = "recipe") -> None:
    """Recipe values that depend on the teacher (e.g. layer indices) give a clear error up front."""
    problem = techniques.check(recipe, len(inputs.teacher.encoder_layers))
    if problem:
        raise ConfigError(f"{source}: {problem}")
    if recipe.elastic and inputs.elastic is None:
        raise ConfigError(f"{source}: elastic: true starts from the task's elastic network, which these engine "
                          "inputs do not hold; add an `elastic:` block to the experiment file (from Python: "
                          "session.engine_inputs(exp, elastic=True))")


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
