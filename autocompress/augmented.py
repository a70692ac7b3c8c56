"""Teacher-labelled augmentation: new training rows (`engine/augment.py`), the teacher's outputs on them, cached.

The rows and the outputs are made once per (teacher, training rows, settings) and stored beside the teacher as
`augment-<key>.npz` (written atomically), so that every elastic network trained from that teacher with the same
settings reads them back. Each row's label is what the teacher says of it (`Task.pseudo_labels`), for a loss
that mixes in labels (alpha < 1). No validation or test row is ever read: the new rows come from training rows
only.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import AugmentConfig
from .engine._io import atomic_path, digest
from .engine.augment import AugmentSettings, augment, word_starts_of
from .engine.batches import Encoded
from .engine.errors import ConfigError
from .engine.measure import predict_logits
from .engine.tasks import Task
from .log import Log, silent
from .progress import Progress, progress_for
from .teacher import Teacher

VERSION = "augment-v1"  # part of every key: a change to how rows are made makes new ones
CHUNK = 1024  # rows scored between progress updates


def settings_of(cfg: AugmentConfig) -> AugmentSettings:
    return AugmentSettings(factor=cfg.factor, drop=cfg.drop, replace=cfg.replace, seed=cfg.seed)


def key_of(teacher: Teacher, cfg: AugmentConfig) -> str:
    return digest(VERSION, teacher.folder.name, teacher.data.train_key, cfg.model_dump())


def check(task: Task) -> None:
    """A one-line ConfigError where `task` takes no augmented rows (per-token labels; unlabelled training text)."""
    if task.per_token or not task.labelled_training:
        raise ConfigError(f"elastic.augment: new rows are not made for a {task.name} task yet; leave augment out "
                          "of the experiment's elastic block")


def augmented_rows(teacher: Teacher, cfg: AugmentConfig, max_length: int, log: Log = silent,
                   progress: Progress | None = None) -> tuple[Encoded, torch.Tensor]:
    """(new rows labelled by the teacher, the teacher's outputs on them): from the cache, or made and cached first."""
    task = teacher.data.task
    check(task)
    file = teacher.folder / f"augment-{key_of(teacher, cfg)}.npz"
    if not file.is_file():
        rows = _make(teacher, cfg, max_length, log)
        outputs = _score(teacher, rows, progress or progress_for(log))
        labels = task.pseudo_labels(outputs)
        if labels is None:
            raise ConfigError(f"elastic.augment: the {task.name} task gives no labels to new rows; leave augment out")
        with atomic_path(file) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=rows.ids, types=rows.types, offsets=rows.offsets, labels=labels, outputs=outputs)
        log(f"augment: {len(rows):,} new rows scored by the teacher; cached in {file}")
    with np.load(file) as stored:
        rows = Encoded(stored["ids"], stored["types"], stored["offsets"], stored["labels"])
        return rows, torch.from_numpy(stored["outputs"])


def _make(teacher: Teacher, cfg: AugmentConfig, max_length: int, log: Log) -> Encoded:
    tokenizer = teacher.tokenizer
    train = teacher.data.train
    log(f"augment: making {round(cfg.factor * len(train)):,} new rows from {len(train):,} training rows (words "
        f"dropped at {cfg.drop}, replaced at {cfg.replace}, or two rows spliced)")
    return augment(train, settings_of(cfg), special_ids=set(tokenizer.all_special_ids),
                   word_starts=word_starts_of(tokenizer.get_vocab()), max_length=max_length)


def _score(teacher: Teacher, rows: Encoded, progress: Progress) -> np.ndarray:
    parts = []
    with progress(len(rows), "augment: teacher outputs on new rows", "row") as bar:
        for start in range(0, len(rows), CHUNK):
            idx = np.arange(start, min(start + CHUNK, len(rows)))
            parts.append(predict_logits(teacher.model, rows.subset(idx)))
            bar.advance(len(idx))
    return np.concatenate(parts).astype(np.float32)
