"""Turn pydantic validation errors into one readable line naming the key and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

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


def read_yaml(path: Path, what: str, hint: str) -> Any:
    """Parse a YAML (or JSON) file; a missing file or bad syntax is one ConfigError line."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found; {hint}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; pass a YAML {what} file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else str(err).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML ({where}); fix the syntax") from None
