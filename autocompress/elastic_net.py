"""The task's elastic network: trained once per (teacher, training rows, settings), then read from the cache.

A copy of the task teacher has its attention heads and FFN neurons ranked by Taylor importance on
training batches (the KD loss on the teacher's cached logits, as the heads/FFN technique ranks them),
so that every sub-network keeps the most important units; it is then distilled from those logits with
the sandwich rule (`engine/elastic.py`). The result is stored in full precision under
`<cache>/elastic/<id>/` (`weights.safetensors`, `architecture.json`) with `elastic.json` (its id,
settings, steps, training seconds and date), written atomically. Recipes with `elastic: true` cut
their sub-network out of it.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from . import augmented
from .engine._io import atomic_dir, digest, write_json
from .config import ElasticConfig, Experiment
from .engine.batches import concat, infinite_batches
from .engine.device import for_training, label
from .engine.distill import TrainingDiverged, distilled_importance
from .engine.elastic import (
    ElasticSettings,
    SubnetShape,
    embedding_width,
    rank_units_,
    subnet_counts,
    train_elastic_,
)
from .engine.model import Classifier
from .engine.storage import load_model, save_model
from .engine.errors import ConfigError
from .log import Log, silent
from .progress import Progress, StepBar, duration, progress_for
from .teacher import Teacher

INFO = "elastic.json"
IMPORTANCE_BATCHES = 32  # training batches the units are ranked on (once, so more than a trial's 8)
VERSION = "elastic-v1"  # part of every id: a change to how networks are made starts new ones


@dataclass(frozen=True)
class ElasticInfo:
    """What `elastic.json` records about one elastic network."""

    id: str
    folder: Path
    steps: int
    train_seconds: float  # ranking and training, when it was made
    date: str  # when it was made (UTC, ISO 8601)
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "folder": str(self.folder), "steps": self.steps,
                "train_seconds": self.train_seconds, "date": self.date}


@dataclass(frozen=True)
class ElasticNet:
    model: Classifier
    info: ElasticInfo
    cached: bool  # read from the cache (not trained by this call)


def settings_of(cfg: ElasticConfig, n_teacher_layers: int, device: str = "cpu", bf16: bool = False) -> ElasticSettings:
    """The engine's training settings for an experiment's `elastic:` block and its teacher, trained on `device`."""
    return ElasticSettings(steps=cfg.steps, lr=cfg.lr, temperature=cfg.temperature, alpha=cfg.alpha,
                           depths=cfg.depths_for(n_teacher_layers), heads_fracs=cfg.heads, ffn_fracs=cfg.ffn,
                           random_subnets=cfg.random_subnets, seed=cfg.seed, bits=cfg.bits,
                           embedding_bits=cfg.embedding_bits, device=device, bf16=bf16,
                           hidden_mse=cfg.hidden_mse, attention_kl=cfg.attention_kl, progressive=cfg.progressive)


def _settings_record(settings: ElasticSettings) -> dict[str, Any]:
    """The training settings a network is keyed and recorded by. Where it trained (device, autocast) is not
    among them: a network trained on a GPU serves a CPU-only machine under the same id. A setting added later is
    left out while it has its default (`bits` empty, no layer-wise terms, no progressive shrinking), so networks
    keep the ids (and caches) they had before it existed."""
    record = asdict(settings)
    del record["device"], record["bf16"]
    for name, default in (("bits", ()), ("embedding_bits", ()), ("hidden_mse", 0.0), ("attention_kl", 0.0),
                          ("progressive", False)):
        if record[name] == default:
            del record[name]
    return record


def network_id(teacher: Teacher, cfg: ElasticConfig) -> str:
    """The cache key: the teacher's identity (its cache folder's key), the training rows and the settings."""
    settings = settings_of(cfg, len(teacher.model.encoder_layers))
    augment = [{"augment": augmented.key_of(teacher, cfg.augment)}] if cfg.augment is not None else []
    return digest(VERSION, teacher.folder.name, teacher.data.train_key, _settings_record(settings),
                  {"batch_size": cfg.batch_size, "importance_batches": IMPORTANCE_BATCHES}, *augment)


def folder_of(exp: Experiment, network: str) -> Path:
    return exp.cache / "elastic" / network


def read_info(folder: Path) -> ElasticInfo:
    data = json.loads((folder / INFO).read_text())
    return ElasticInfo(id=data["id"], folder=folder, steps=int(data["steps"]),
                       train_seconds=float(data["train_seconds"]), date=data["date"], settings=data["settings"])


def prepare(exp: Experiment, teacher: Teacher, log: Log = silent, progress: Progress | None = None) -> ElasticNet:
    """The experiment's elastic network: from the cache, or ranked, trained and cached first.

    progress: how training shows its progress (default: what `log` carries, see `progress.progress_for`).
    """
    cfg = exp.elastic
    if cfg is None:
        raise ConfigError(f"experiment '{exp.name}' has no `elastic:` block; add one (e.g. `elastic: {{steps: 2000}}`)")
    n_layers = len(teacher.model.encoder_layers)
    problem = cfg.check(n_layers)
    if problem:
        raise ConfigError(problem)
    if cfg.augment is not None:
        augmented.check(teacher.data.task)
    network = network_id(teacher, cfg)
    folder = folder_of(exp, network)
    if (folder / INFO).is_file():
        info = read_info(folder)
        log(f"elastic: network {network} from the cache ({folder}; trained once in {duration(info.train_seconds)}, "
            f"{info.steps} steps)")
        return ElasticNet(load_model(folder), info, cached=True)
    on, bf16 = for_training(exp.train.device, exp.train.precision)
    settings = settings_of(cfg, n_layers, on, bf16)
    started = time.perf_counter()
    model = _train(teacher, cfg, settings, exp.task.max_length, log, progress or progress_for(log))
    seconds = round(time.perf_counter() - started, 1)
    date = datetime.now(UTC).isoformat(timespec="seconds")
    stored = {**_settings_record(settings), "batch_size": cfg.batch_size, "importance_batches": IMPORTANCE_BATCHES,
              **({"augment": cfg.augment.model_dump()} if cfg.augment is not None else {})}
    with atomic_dir(folder) as tmp:
        save_model(model, tmp, 32, 32)
        write_json(tmp / INFO, {"id": network, "teacher": teacher.folder.name, "train_key": teacher.data.train_key,
                                "settings": stored, "steps": settings.steps, "train_seconds": seconds, "date": date,
                                "trained_on": label(on, bf16)})
    log(f"elastic: trained in {duration(seconds)}; cached in {folder}")
    return ElasticNet(model, read_info(folder), cached=False)


def _train(teacher: Teacher, cfg: ElasticConfig, settings: ElasticSettings, max_length: int, log: Log,
           progress: Progress) -> Classifier:
    """A copy of the teacher, its units ranked by importance, then trained with the sandwich rule (on the training
    rows and, with `augment`, the teacher-labelled new rows after them)."""
    model = copy.deepcopy(teacher.model)
    train, logits = teacher.data.train, teacher.train_logits
    for shape in (settings.largest, settings.smallest):
        subnet_counts(model, shape)  # an impossible shape fails before any work
    log(f"elastic: ranking heads and FFN neurons on {IMPORTANCE_BATCHES} training batches")

    rank_units_(model, distilled_importance(model, train, logits, batch_size=cfg.batch_size, seed=cfg.seed,
                                            batches=IMPORTANCE_BATCHES, temperature=cfg.temperature,
                                            alpha=cfg.alpha, device=settings.device))
    if cfg.augment is not None:
        extra, extra_logits = augmented.augmented_rows(teacher, cfg.augment, max_length, log, progress)
        train, logits = concat(train, extra), torch.cat([logits, extra_logits.to(logits.dtype)])
    log(f"elastic: training the elastic network for {settings.steps} steps on {len(train)} rows on "
        f"{label(settings.device, settings.bf16)} (depths "
        f"{list(settings.depths)}, heads {list(settings.heads_fracs)}, FFN {list(settings.ffn_fracs)}; "
        f"{2 + settings.random_subnets} sub-networks a step"
        + (f"; quantization-aware at {', '.join(map(str, settings.bits))} bits" if settings.bits else "")
        + (f" (tables also at {', '.join(map(str, settings.embedding_bits))})" if settings.embedding_bits else "")
        + (f"; layer-wise distillation (hidden {settings.hidden_mse}, attention {settings.attention_kl})"
           if settings.hidden_mse or settings.attention_kl else "")
        + ("; progressive shrinking" if settings.progressive else "")
        + "; cached after this)")
    try:
        with StepBar(progress, "elastic: training") as bar:
            train_elastic_(model, infinite_batches(train, cfg.batch_size, cfg.seed), settings, teacher_logits=logits,
                           hooks=[bar])
    except TrainingDiverged as err:
        raise ConfigError(f"elastic: training diverged ({err}); lower elastic.lr in the experiment file") from None
    return model.eval()


def untrained_note(cfg: ElasticConfig, teacher: Classifier, *, depths: list[int] | None = None,
                   heads: list[float] | None = None, ffn: list[float] | None = None, bits: list[int] | None = None,
                   embedding_bits: list[int] | None = None) -> str | None:
    """A line naming the depths, kept fractions and integer widths (weights, tables) asked for that the elastic
    network was not trained on (their sub-networks still run, but were never trained as such), or None when all
    were trained. Float and bfloat16 (16 bits and up) count as trained."""
    n = len(teacher.encoder_layers)
    trained = settings_of(cfg, n)
    counts = lambda h, f: subnet_counts(teacher, SubnetShape(1, h, f))
    heads_ok = {counts(h, 1.0).heads for h in trained.heads_fracs}
    ffn_ok = {counts(1.0, f).neurons for f in trained.ffn_fracs}
    missing = []
    if depths:
        bad = sorted({min(d, n) for d in depths} - set(trained.depths))
        missing += [f"depth {', '.join(map(str, bad))}"] if bad else []
    if heads:
        bad = sorted({h for h in heads if counts(h, 1.0).heads not in heads_ok})
        missing += [f"heads_keep {', '.join(map(str, bad))}"] if bad else []
    if ffn:
        bad = sorted({f for f in ffn if counts(1.0, f).neurons not in ffn_ok})
        missing += [f"ffn_keep {', '.join(map(str, bad))}"] if bad else []
    tables = {embedding_width(b) for b in trained.bits} | set(trained.embedding_bits)
    for name, asked, ok in (("bits", bits, set(trained.bits)), ("embedding_bits", embedding_bits, tables)):
        if trained.bits:  # a float-only network is cut and quantized with recovery steps: no width is its own
            bad = sorted({b for b in asked or () if b < 16} - ok, reverse=True)
            missing += [f"{name} {', '.join(map(str, bad))}"] if bad else []
    if not missing:
        return None
    widths = f", bits {list(trained.bits)}, tables at {sorted(tables, reverse=True)}" if trained.bits else ""
    return (f"elastic: the elastic network was not trained at {' and '.join(missing)} (it trained depths "
            f"{list(trained.depths)}, heads {list(trained.heads_fracs)}, FFN {list(trained.ffn_fracs)}{widths}): "
            "those sub-networks run but score lower; add them to the experiment's elastic block to train them")
