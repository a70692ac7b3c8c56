"""How candidates are measured (the experiment's `measure:` block): threads, timing repeats, the timed
length and batch sizes, and the validation rows candidates are scored on. No torch here: the experiment
config reads it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MeasureConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    threads: int = Field(2, ge=1, le=256)
    warmup: int = Field(3, ge=0, le=1000)
    repeats: int = Field(15, ge=1, le=10_000)
    seq_len: int = Field(64, ge=4, le=512)
    batch_sizes: tuple[int, ...] = (1, 32)
    eval_subset: int | None = Field(None, ge=1, description="score candidates on the first N validation rows")
