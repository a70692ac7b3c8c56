"""Turn pydantic validation errors into one readable line naming the key and the problem."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from .errors import ConfigError

M = TypeVar("M", bound=pydantic.BaseModel)


def describe(err: pydantic.ValidationError) -> str:
    """First error of a ValidationError as 'a.b.c: message'."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{where}: {msg}" if where else msg


def validate(model: type[M], data: Any, source: str) -> M:
    """Build `model` from plain data or raise ConfigError('<source>: <key>: <problem>')."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        raise ConfigError(f"{source}: {describe(err)}") from None
