"""Dated policy parameters: one YAML file each, with unit, clause, source and confidence per value.

A parameter's value for an evaluation year is the value in force on 1 January of that year (the OpenFisca
convention for yearly periods). A ``null`` value ends a parameter: no value is in force from that date.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from povertyrules.errors import RuleError
from povertyrules.lang import safeyaml

MAX_VALUE = 1e12  # no policy figure comes near; larger values are typing errors or attacks


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    """A text in Chinese and English."""

    zh: str
    en: str


class DatedValue(_Strict):
    value: float | bool | None
    source: str | None = None
    confidence: str | None = None
    note: str | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, float) and not (math.isfinite(v) and abs(v) <= MAX_VALUE):
            raise ValueError(f"a parameter value must be a finite number of at most {MAX_VALUE:g}, got {v}")
        return v


class Parameter(_Strict):
    name: str
    description: Text
    clause: list[str] = Field(min_length=1)
    unit: str
    reference: str
    #: False where the rules handle the parameter's absence themselves (tested with `is known`); or dated, e.g.
    #: ``{2010-01-01: true, 2021-01-01: false}``: required in the years from a date on (as values are dated)
    required: bool | dict[dt.date, bool] = True
    values: dict[dt.date, DatedValue] = Field(min_length=1)
    file: str = ""

    @field_validator("clause", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def type(self) -> str:
        kinds = {type(v.value) for v in self.values.values() if v.value is not None}
        return "bool" if kinds == {bool} else "number"

    def entry(self, year: int) -> tuple[dt.date, DatedValue] | None:
        """The dated value in force on 1 January of `year`, or None if none is."""
        instant = dt.date(year, 1, 1)
        past = [d for d in self.values if d <= instant]
        if not past:
            return None
        start = max(past)
        return (start, self.values[start]) if self.values[start].value is not None else None

    def required_at(self, year: int) -> bool:
        """Whether a run for `year` needs a value (a run stops where a required parameter has none)."""
        if isinstance(self.required, bool):
            return self.required
        past = [d for d in self.required if d <= dt.date(year, 1, 1)]
        return self.required[max(past)] if past else False

    def at(self, year: int) -> float | bool | None:
        """The value in force for the evaluation year, or None."""
        found = self.entry(year)
        return found[1].value if found else None

    def with_values(self, values: dict[dt.date, DatedValue], file: str, replace: bool = False) -> Parameter:
        """A copy with `values` laid over this parameter's values (same date replaces), or replacing them."""
        merged = dict(values) if replace else dict(self.values) | values
        return self.model_copy(update={"values": dict(sorted(merged.items())), "file": f"{self.file} + {file}"})


def _validation_error(exc: ValidationError, file: str) -> RuleError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return RuleError(f"{first['msg']} at '{where}'", file=file)


def load_parameter(path: Path) -> Parameter:
    """Read one parameter file; the parameter's name is the file's stem."""
    data = _read_yaml(path)
    try:
        return Parameter.model_validate({**data, "name": path.stem, "file": str(path)})
    except ValidationError as exc:
        raise _validation_error(exc, str(path)) from None


def load_parameters(folder: Path) -> dict[str, Parameter]:
    """Every ``*.yaml`` below `folder`; two files with the same stem are an error."""
    found: dict[str, Parameter] = {}
    for path in sorted(folder.rglob("*.yaml")):
        if path.name == "index.yaml":
            continue
        parameter = load_parameter(path)
        if parameter.name in found:
            raise RuleError(f"parameter '{parameter.name}' is also defined in {found[parameter.name].file}",
                            file=str(path))
        found[parameter.name] = parameter
    return found


def parse_override_values(raw: Any, file: str, name: str) -> tuple[dict[dt.date, DatedValue], bool]:
    """Override values and whether they replace all dates.

    A bare value replaces the parameter for every year; ``{date: value | {value:, source:, …}}`` lays dated
    values over the shipped ones.
    """
    replace = not isinstance(raw, dict)
    if replace:
        raw = {dt.date(1900, 1, 1): {"value": raw, "source": file}}
    try:
        return {
            (key if isinstance(key, dt.date) else dt.date.fromisoformat(str(key))):
            DatedValue.model_validate(v if isinstance(v, dict) else {"value": v, "source": file})
            for key, v in raw.items()
        }, replace
    except ValidationError as exc:
        first = exc.errors()[0]
        given = first.get("input")
        if first.get("type") in ("float_parsing", "bool_parsing", "float_type", "bool_type"):
            raise RuleError(f"参数“{name}”的取值“{given}”不是数字（也不是“是/否”）/ parameter '{name}': "
                            f"'{given}' is not a number (nor true/false)", file=file) from None
        reason = first.get("msg", "").removeprefix("Value error, ")
        raise RuleError(f"参数“{name}”的取值无效 / bad value for parameter '{name}': {reason}", file=file) from None
    except ValueError as exc:  # a date key that is not YYYY-MM-DD
        raise RuleError(f"参数“{name}”的生效日期须为 YYYY-MM-DD / parameter '{name}': a date must be YYYY-MM-DD "
                        f"({exc})", file=file) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    data = safeyaml.load(path)
    if not isinstance(data, dict):
        raise RuleError("expected a mapping at the top level", file=str(path))
    return data
