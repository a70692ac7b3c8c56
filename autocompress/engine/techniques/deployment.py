"""Deployment: the runtime a candidate is exported for, measured on and served by.

`runtime: None` means the experiment's runtime. A search space may make it a dimension
(`runtime: {choices: [onnxruntime, openvino]}`), so that a trial's precision is timed on the
library that runs it fastest on this CPU; the runtimes themselves live in `engine/runtimes/`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from ..runtimes import names
from .base import Technique


def registered_runtime(value: object) -> object:
    """`value` when it is a registered runtime name; ValueError listing the names otherwise."""
    choices = names()
    if value not in choices:
        options = " or ".join(", ".join(repr(n) for n in choices).rsplit(", ", 1))
        raise ValueError(f"Input should be {options}")
    return value


class DeploymentFields(BaseModel):
    runtime: str | None = Field(
        None, description="registry name of the runtime the candidate is deployed on (None: the experiment's)")

    @field_validator("runtime", mode="before")
    @classmethod
    def _registered(cls, value: object) -> object:
        return value if value is None else registered_runtime(value)


class Deployment(Technique):
    name = "deployment"
    Fields = DeploymentFields
