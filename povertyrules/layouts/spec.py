"""Layout files (``rules/layouts/*.yaml``) → checked `Layout` objects.

A layout says how one kind of county file maps onto the column contract: which headers mean which field (unit
suffixes and full/half-width punctuation are folded away), value maps (户类型 → 建档立卡状态, √/×), which fields
are per person and which per household, the key that groups person rows into households, person facts
aggregated per household, and derived columns written in the rule language (never evaluated by Python). A
county adds or edits a layout without code. Where a layout declares that a blank means zero (a ledger that lists
only positive amounts), that is recorded with the run; nowhere else does a blank become a value.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from povertyrules.errors import ExpressionError, RuleError
from povertyrules.lang import expr as ex
from povertyrules.lang import safeyaml
from povertyrules.lang.parameters import Text
from povertyrules.model.columns import HOUSEHOLD_COLUMNS, Column, Kind, normalize_header

FieldType = Literal["text", "number", "int", "month", "bool", "choice", "id_number"]
CONTRACT = {c.name: c for c in HOUSEHOLD_COLUMNS}
MAX_FIELDS = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    headers: list[str] = Field(min_length=1, max_length=50)
    type: FieldType | None = None  # default: the contract column's type, else text
    map: dict[str, str] | None = Field(default=None, max_length=200)  # spelling -> value (a choice)
    per: Literal["household", "person"] = "household"
    blank: Literal["unknown", "zero"] = "unknown"
    minimum: float | None = None


class AggregateSpec(_Strict):
    """Person rows → one household value: how many rows satisfy a condition, whether any/all do, a sum."""

    count: str | None = None
    any: str | None = None
    all: str | None = None
    sum: str | None = None


class CheckSpec(_Strict):
    """Two values a file holds twice (e.g. its own 人均纯收入 against ours) that should agree."""

    id: str
    computed: str
    recorded: str
    tolerance: float = 0
    description: Text


class LayoutFile(_Strict):
    layout: str
    description: Text
    source: str
    grain: Literal["household", "person"] = "household"
    key: str = "household_id"
    recognise: list[str | list[str]] = Field(min_length=1)  # each: a header, or a list of alternatives
    join_key: str | None = None
    contract_columns: bool = False
    fields: dict[str, FieldSpec] = Field(default_factory=dict, max_length=MAX_FIELDS)
    aggregate: dict[str, AggregateSpec] = Field(default_factory=dict)
    members: dict[str, str] = Field(default_factory=dict)
    derive: dict[str, str] = Field(default_factory=dict)
    checks: list[CheckSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class LayoutField:
    name: str
    headers: tuple[str, ...]  # normalized, in priority order
    column: Column  # how cells are parsed (a contract column, or one built from the spec)
    per: str
    blank: str
    id_number: bool = False

    @property
    def type(self) -> str:
        return "text" if self.id_number else self.column.type


@dataclass
class Layout:
    name: str
    description: Text
    source: str
    file: str
    grain: str
    key: str
    recognise: tuple[tuple[str, ...], ...]  # every entry must match one of its normalized spellings
    fields: dict[str, LayoutField]
    aggregate: dict[str, tuple[str, ex.Node]] = field(default_factory=dict)  # name -> (function, expression)
    members: dict[str, ex.Node] = field(default_factory=dict)  # member-sheet column -> person expression
    derive: dict[str, ex.Node] = field(default_factory=dict)
    checks: list[tuple[CheckSpec, ex.Node, ex.Node]] = field(default_factory=list)
    join_key: str | None = None
    types: dict[str, str] = field(default_factory=dict)  # every field, aggregate, member column and derived name

    def blank_as_zero(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.blank == "zero"]

    def outputs(self) -> list[str]:
        """The contract columns this layout can fill."""
        names = [*self.fields, *self.aggregate, *self.derive]
        return [n for n in dict.fromkeys(names) if n in CONTRACT]


BRACKETED = re.compile(r"\s*[（(][^（()）]*[)）]")


def strip_units(header: str) -> str:
    """A header without units or points in brackets: 家庭人口（人） → 家庭人口, 一看房（20分）/小计 → 一看房/小计."""
    stripped = BRACKETED.sub("", header).strip()
    return stripped or header.strip()


def header_keys(header: str) -> tuple[str, str]:
    """(full, without units) normalized keys of a header."""
    return normalize_header(header), normalize_header(strip_units(header))


def load_layouts(folder: Path) -> dict[str, Layout]:
    return safeyaml.load_folder(folder, load_layout, "layout")


def load_layout(path: Path) -> Layout:
    data = safeyaml.load(path)
    try:
        spec = LayoutFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RuleError(f"{first['msg']} at '{where}'", file=str(path)) from None
    return _compile(spec, str(path))


def _compile(spec: LayoutFile, file: str) -> Layout:
    fields: dict[str, LayoutField] = {}
    if spec.contract_columns:
        for column in HOUSEHOLD_COLUMNS:
            keys = dict.fromkeys(normalize_header(h) for h in (column.name, column.zh, *column.aliases))
            fields[column.name] = LayoutField(column.name, tuple(keys), column, "household", "unknown")
    for name, f in spec.fields.items():
        fields[name] = _field(name, f, file)
    layout = Layout(spec.layout, spec.description, spec.source, file, spec.grain, spec.key,
                    tuple(tuple(header_keys(h)[1] for h in ([r] if isinstance(r, str) else r))
                          for r in spec.recognise), fields, join_key=spec.join_key)
    if spec.key not in fields:
        raise RuleError(f"the key '{spec.key}' is not a field of the layout", file=file)
    if spec.join_key and spec.join_key not in fields:
        raise RuleError(f"the join key '{spec.join_key}' is not a field of the layout", file=file)
    types: dict[str, str] = {n: f.type for n, f in fields.items()}
    person = {n for n, f in fields.items() if f.per == "person"}

    def typed(rule: str, text: str, allowed: set[str], scope: str) -> tuple[ex.Node, str]:
        try:
            node = ex.parse(text)

            def resolve(n: ex.Name) -> str:
                if n.name not in allowed:
                    hint = difflib.get_close_matches(n.name, allowed, n=1)
                    raise ExpressionError(f"unknown {scope} name '{n.name}'"
                                          + (f"; did you mean '{hint[0]}'?" if hint else ""), n.pos)
                return types[n.name]
            for node_ in ex.walk(node):
                if isinstance(node_, ex.Call) and node_.function == "last_year":
                    raise ExpressionError("last_year() is for rules, not layouts", node_.pos)
            return node, ex.infer_type(node, resolve)
        except ExpressionError as exc:
            raise RuleError(exc.message, file=file, rule=rule, position=exc.position) from None

    for name, agg in spec.aggregate.items():
        chosen = [(fn, text) for fn, text in agg.model_dump().items() if text is not None]
        if len(chosen) != 1:
            raise RuleError("an aggregate takes exactly one of count, any, all, sum", file=file, rule=name)
        fn, text = chosen[0]
        node, kind = typed(name, text, set(types), "field")
        want = "number" if fn == "sum" else "bool"
        if kind != want:
            raise RuleError(f"{fn} needs a {want} expression, got {kind}", file=file, rule=name)
        layout.aggregate[name] = (fn, node)
        types[name] = "bool" if fn in ("any", "all") else "number"
    for name, text in spec.members.items():
        layout.members[name], kind = typed(f"members.{name}", text, person | {spec.key}, "person field")
        types[f"members.{name}"] = kind
    if spec.members:
        types["id1_members"] = "number"
    household_scope = {n for n in types if n not in person}
    for name, text in spec.derive.items():
        node, kind = typed(name, text, household_scope, "household field")
        target = CONTRACT.get(name)
        if target is not None and target.type != kind:
            raise RuleError(f"'{name}' is a {target.type} column of the contract, the expression gives {kind}",
                            file=file, rule=name)
        layout.derive[name] = node
        types[name] = kind
        household_scope.add(name)
    for check in spec.checks:
        left, _ = typed(check.id, check.computed, household_scope, "household field")
        right, _ = typed(check.id, check.recorded, household_scope, "household field")
        layout.checks.append((check, left, right))
    layout.types = types
    return layout


def _field(name: str, spec: FieldSpec, file: str) -> LayoutField:
    headers = tuple(dict.fromkeys(k for h in spec.headers for k in header_keys(h)))
    contract = CONTRACT.get(name)
    kind: Kind
    if spec.type == "id_number":
        column = Column(name, spec.headers[0], "text")
        return LayoutField(name, headers, column, spec.per, spec.blank, id_number=True)
    if spec.map is not None:
        if contract is not None and contract.kind == "choice":
            bad = sorted(set(spec.map.values()) - set(contract.choices.values()))
            if bad:
                raise RuleError(f"map gives {bad}, not values of the contract column '{name}'", file=file, rule=name)
        choices = {**{k: v for k, v in spec.map.items()}, **{v: v for v in spec.map.values()}}
        column = Column(name, spec.headers[0], "choice", choices=choices)
    elif contract is not None and spec.type is None:
        column = Column(name, spec.headers[0], contract.kind, minimum=contract.minimum, maximum=contract.maximum,
                        choices=contract.choices)
    else:
        kind = spec.type or "text"
        if kind == "choice":
            raise RuleError("a choice field needs a map", file=file, rule=name)
        column = Column(name, spec.headers[0], kind, minimum=spec.minimum)
    if spec.blank == "zero" and column.kind not in ("number", "int"):
        raise RuleError("only number fields may declare that a blank means zero", file=file, rule=name)
    return LayoutField(name, headers, column, spec.per, spec.blank)
