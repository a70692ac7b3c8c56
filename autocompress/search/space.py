"""Search spaces: YAML data -> typed dimensions -> Optuna suggestions -> Recipe.

A space file maps dimension names to ranges or choices:

    depth:       {low: 2, high: 6}                  # student layers, evenly spread over the teacher
    keep_last:   {choices: [true, false]}           # spread so that the teacher's last layer is kept
    temperature: {low: 1.0, high: 8.0, log: true}
    bits:        {choices: [32, 16, 8, 4, 2, 1]}
    embedding_bits: {choices: [8, 4], when: {bits: [4, 2, 1]}}   # only sampled under a condition
    prune_scope: {choices: [global, layer], when: {prune_ratio: {gt: 0}}}
    fixed:       {batch_size: 32}                   # constant recipe values

Dimension names are Recipe fields (except `layers`) plus `depth` and `keep_last`. The mapping from a trial to a
Recipe is pure: it only calls the trial's suggest_* methods (testable with optuna's FixedTrial).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..engine._validation import describe, read_yaml
from ..engine.student import evenly_spaced_layers
from ..engine.errors import ConfigError
from ..engine.recipe import Recipe

DIMENSIONS = tuple(k for k in Recipe.model_fields if k != "layers") + ("depth", "keep_last")


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    gt: float | None = None
    lt: float | None = None

    def holds(self, value: Any) -> bool:
        return (self.gt is None or value > self.gt) and (self.lt is None or value < self.lt)


class Dim(BaseModel):
    """One dimension: a numeric range (low/high, optional log or step) or a list of choices."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: tuple[Any, ...] | None = None
    when: dict[str, tuple[Any, ...] | Condition] | None = None

    @model_validator(mode="after")
    def _shape(self) -> "Dim":
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices is empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high, or choices")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    def values_to_check(self) -> list[Any]:
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def applies(self, chosen: dict[str, Any]) -> bool:
        for key, cond in (self.when or {}).items():
            if key not in chosen:
                return False
            value = chosen[key]
            if isinstance(cond, Condition):
                if not cond.holds(value):
                    return False
            elif value not in cond:
                return False
        return True


_INT_DIMS = {k for k, f in Recipe.model_fields.items() if f.annotation in (int, int | None)} | {"depth"}


class SearchSpace(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "space"
    dims: dict[str, Dim]
    fixed: dict[str, Any] = {}

    def suggest(self, trial: Any, n_teacher_layers: int) -> Recipe:
        """Ask `trial` for every applicable dimension, in file order, and build the Recipe."""
        chosen: dict[str, Any] = {}
        for name, dim in self.dims.items():
            if not dim.applies(chosen):
                continue
            if dim.choices is not None:
                chosen[name] = trial.suggest_categorical(name, list(dim.choices))
            elif name in _INT_DIMS:
                chosen[name] = trial.suggest_int(name, int(dim.low), int(dim.high), step=int(dim.step or 1),
                                                 log=dim.log)
            else:
                chosen[name] = trial.suggest_float(name, dim.low, dim.high, step=dim.step, log=dim.log)
        return self.to_recipe(chosen, n_teacher_layers)

    def to_recipe(self, chosen: dict[str, Any], n_teacher_layers: int) -> Recipe:
        values = {**self.fixed, **chosen}
        depth = values.pop("depth", None)
        keep_last = bool(values.pop("keep_last", False))
        if depth is not None:
            depth = min(int(depth), n_teacher_layers)
            values["layers"] = (None if depth == n_teacher_layers
                                else list(evenly_spaced_layers(n_teacher_layers, depth, keep_last)))
        return Recipe.from_dict(values, f"search space '{self.name}'")

    def offers(self, key: str, value: Any) -> bool:
        """Whether some trial can get `value` for recipe key `key`: fixed to it, or among its choices."""
        if key in self.fixed:
            return self.fixed[key] == value
        dim = self.dims.get(key)
        return dim is not None and dim.choices is not None and value in dim.choices

    def without(self, keys: list[str]) -> "SearchSpace":
        """This space with recipe keys `keys` left at their defaults (their dimensions and fixed values
        dropped, and conditions on them with them)."""
        dims = {k: d for k, d in self.dims.items() if k not in keys and not set(d.when or {}) & set(keys)}
        return self.model_copy(update={"dims": dims, "fixed": {k: v for k, v in self.fixed.items() if k not in keys}})

    def values_of(self, key: str) -> list[Any] | None:
        """The values a trial can get for `key`: the fixed value, the choices, every step of a stepped or
        integer range, or a continuous range's two ends; None when the space leaves `key` at its default."""
        if key in self.fixed:
            return [self.fixed[key]]
        dim = self.dims.get(key)
        if dim is None:
            return None
        if dim.choices is not None:
            return list(dim.choices)
        assert dim.low is not None and dim.high is not None
        if key in _INT_DIMS:
            step: float = 1 if dim.log else int(dim.step or 1)
        elif dim.step is not None:
            step = dim.step
        else:
            return [dim.low, dim.high]
        count = round((dim.high - dim.low) / step) + 1
        return [int(dim.low + i * step) if key in _INT_DIMS else dim.low + i * step for i in range(count)]

    def snap(self, params: dict[str, Any]) -> dict[str, Any]:
        """Starting-point params moved inside this space: unknown or inapplicable keys dropped,
        numbers clipped to the range, categorical values kept when they are a choice, and a number
        among numeric choices moved to the nearest one (the larger on a tie: 32 bits among 16/8/4/2
        become 16); any other value not among the choices is dropped."""
        out: dict[str, Any] = {}
        for name, dim in self.dims.items():
            if name not in params or not dim.applies(out):
                continue
            v = params[name]
            if dim.choices is not None:
                if v in dim.choices:
                    out[name] = v
                elif _number(v) and all(_number(c) for c in dim.choices):
                    out[name] = min(dim.choices, key=lambda c: (abs(c - v), -c))
                continue
            v = min(max(v, dim.low), dim.high)
            if dim.step:
                v = dim.low + round((v - dim.low) / dim.step) * dim.step
                v = min(v, dim.high)
            out[name] = int(round(v)) if name in _INT_DIMS else float(v)
        return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


SHIPPED = Path(__file__).resolve().parents[2] / "search_spaces"  # the repository's spaces (source checkouts)


def load_space(path: str | Path) -> SearchSpace:
    """A space file, or the name of a shipped space (`default`, `quick`, ...)."""
    path = Path(path)
    if not path.is_file() and path.suffix == "" and (SHIPPED / f"{path}.yaml").is_file():
        path = SHIPPED / f"{path}.yaml"
    data = read_yaml(path, "search space", "see search_spaces/ for examples")
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of dimension names to ranges or choices")
    return parse_space(data, str(path), path.stem)


def parse_space(data: dict[str, Any], source: str, name: str = "space") -> SearchSpace:
    import pydantic

    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{source}: fixed: expected a mapping of recipe keys to values")
    try:
        Recipe.model_validate(fixed)
    except pydantic.ValidationError as err:
        raise ConfigError(f"{source}: fixed: {describe(err)}") from None
    dims: dict[str, Dim] = {}
    for key, spec in data.items():
        if key == "fixed":
            continue
        if key not in DIMENSIONS:
            raise ConfigError(f"{source}: '{key}' is not a search dimension; use one of {', '.join(DIMENSIONS)}")
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: {key}: expected {{low: .., high: ..}} or {{choices: [..]}}")
        try:
            dims[key] = Dim.model_validate(spec)
        except pydantic.ValidationError as err:
            raise ConfigError(f"{source}: {key}: {describe(err)}") from None
    for key in fixed:
        if key in dims:
            raise ConfigError(f"{source}: fixed: '{key}' is also a dimension; keep one")
    for key, dim in dims.items():
        for target in dim.when or {}:
            if target not in dims or list(dims).index(target) > list(dims).index(key):
                raise ConfigError(f"{source}: {key}: 'when' refers to '{target}', which must be a dimension listed before it")
        # every end of every range must make a valid recipe
        for value in dim.values_to_check():
            probe = {**fixed, key: value}
            if key == "depth":
                if not isinstance(value, (int, float)) or value < 1:
                    raise ConfigError(f"{source}: depth: {value} is not a valid depth (>= 1)")
                continue
            if key == "keep_last":
                if not isinstance(value, bool) or dim.choices is None:
                    raise ConfigError(f"{source}: keep_last: give choices of true / false, not {value!r}")
                continue
            try:
                Recipe.model_validate(probe)
            except pydantic.ValidationError as err:
                raise ConfigError(f"{source}: {key}: value {value!r} is out of range ({describe(err)})") from None
    return SearchSpace(name=name, dims=dims, fixed=fixed)
