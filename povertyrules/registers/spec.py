"""Register files (``rules/registers/*.yaml``) → checked `Register` objects.

A register says which department's file it reads (the headers it is recognised by), which field holds the
person's 证件号码, the record's date (and, for a holding such as a vehicle, the date it ended), the date window
the rules ask (`held`: in force at some time during the assessment year; `during`: dated within it), and
what a matching record means: household facts aggregated over the members' records (`any`, `count`, `sum`, or a
`label` for the households with a matching record), each citing its clause, written in the rule language and
never evaluated by Python. `derive` then computes contract columns from those facts and the household's own
columns (e.g. labour capacity from disability certificates). `evidence` is the sentence each record adds to a
decision; `event` turns records into monitoring events.
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
from povertyrules.layouts.spec import CONTRACT, FieldSpec, Layout, LayoutFile, _compile
from povertyrules.monitor.events import KINDS, SOURCES

MAX_FACTS = 50
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterField(_Strict):
    headers: list[str] = Field(min_length=1, max_length=50)
    type: Literal["text", "number", "id_number", "date"] = "text"
    map: dict[str, str] | None = Field(default=None, max_length=200)


class FactSpec(_Strict):
    clause: str | list[str]
    description: Text | None = None
    any: str | None = None
    count: str | None = None
    sum: str | None = None
    label: str | None = None
    when: str | None = None  # for sum and label: which records count


class EventSpec(_Strict):
    kind: str
    source: str
    clause: str  # the clause under which a department's records arrive as monitoring events
    amount: str | None = None  # a number field of the record


class RegisterFile(_Strict):
    id: str = Field(alias="register")
    name: Text  # what the evidence calls it: 车辆登记
    department: Text
    description: Text
    source: str
    recognise: list[str | list[str]] = Field(min_length=1)
    fields: dict[str, RegisterField] = Field(min_length=1, max_length=100)
    id_number: str = "id_number"
    date: str = "date"
    until: str | None = None
    kind: str | None = None  # the field that names the record's kind (for counts of unmatched records)
    window: Literal["held", "during"]
    complete: bool = True
    facts: dict[str, FactSpec] = Field(min_length=1, max_length=MAX_FACTS)
    derive: dict[str, str] = Field(default_factory=dict)
    evidence: str
    event: EventSpec | None = None


@dataclass(frozen=True)
class Fact:
    name: str
    function: str  # any, count, sum, label
    expr: ex.Node | None  # the condition (any/count), the amount (sum)
    when: ex.Node | None
    label: str | None
    clauses: tuple[str, ...]
    type: str  # bool, number, text

    @property
    def citation(self) -> str:
        return "、".join(self.clauses)


@dataclass
class Register:
    name: str
    title: Text
    department: Text
    description: Text
    file: str
    layout: Layout  # how the file is found and read (a layout of the layouts package)
    types: dict[str, str]  # record field -> text, number, date
    id_number: str
    date: str
    until: str | None
    kind: str | None
    window: str
    complete: bool
    facts: dict[str, Fact]
    derive: dict[str, ex.Node]
    evidence: list[tuple[str, str | None]]  # (literal, field or None)
    event: EventSpec | None
    derive_types: dict[str, str] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> spelling -> value
    reads: tuple[str, ...] = ()  # the record fields the facts read
    field_types: dict[str, str] = field(default_factory=dict)  # field -> text, number, id_number, date


def load_registers(folder: Path) -> dict[str, Register]:
    return safeyaml.load_folder(folder, load_register, "register")


def load_register(path: Path) -> Register:
    try:
        spec = RegisterFile.model_validate(safeyaml.load(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RuleError(f"{first['msg']} at '{'.'.join(str(p) for p in first['loc'])}'", file=str(path)) from None
    return _compile_register(spec, str(path))


def _compile_register(spec: RegisterFile, file: str) -> Register:
    def need(name: str | None, what: str, kinds: tuple[str, ...]) -> None:
        if name is not None and (name not in spec.fields or spec.fields[name].type not in kinds):
            raise RuleError(f"the {what} '{name}' must be a {'/'.join(kinds)} field of the register", file=file)

    need(spec.id_number, "ID-number field", ("id_number",))
    need(spec.date, "date field", ("date",))
    need(spec.until, "end-date field", ("date",))
    need(spec.kind, "kind field", ("text",))
    layout = _compile(LayoutFile(
        layout=f"register:{spec.id}", description=spec.description, source=spec.source,
        key=spec.id_number, recognise=spec.recognise,
        fields={name: FieldSpec(headers=f.headers, type="id_number" if f.type == "id_number" else "text")
                for name, f in spec.fields.items()}), file)
    types = {name: {"id_number": "text", "date": "text"}.get(f.type, f.type) for name, f in spec.fields.items()}
    record_types = {**types}
    maps = {name: f.map for name, f in spec.fields.items() if f.map}

    def typed(rule: str, text: str, allowed: dict[str, str], scope: str) -> tuple[ex.Node, str]:
        try:
            node = ex.parse(text)

            def resolve(n: ex.Name) -> str:
                if n.name not in allowed:
                    hint = difflib.get_close_matches(n.name, list(allowed), n=1)
                    raise ExpressionError(f"unknown {scope} name '{n.name}'"
                                          + (f"; did you mean '{hint[0]}'?" if hint else ""), n.pos)
                return allowed[n.name]
            for node_ in ex.walk(node):
                if isinstance(node_, ex.Call) and node_.function == "last_year":
                    raise ExpressionError("last_year() is for rules, not registers", node_.pos)
            return node, ex.infer_type(node, resolve)
        except ExpressionError as exc:
            raise RuleError(exc.message, file=file, rule=rule, position=exc.position) from None

    facts: dict[str, Fact] = {}
    for name, f in spec.facts.items():
        chosen = [k for k in ("any", "count", "sum", "label") if getattr(f, k) is not None]
        if len(chosen) != 1:
            raise RuleError("a fact takes exactly one of any, count, sum, label", file=file, rule=name)
        function = chosen[0]
        when = typed(name, f.when, record_types, "record field") if f.when else None
        if when is not None and when[1] != "bool":
            raise RuleError(f"'when' needs a condition, got {when[1]}", file=file, rule=name)
        node, kind = (None, "text") if function == "label" else typed(name, getattr(f, function), record_types,
                                                                      "record field")
        want = {"any": "bool", "count": "bool", "sum": "number", "label": "text"}[function]
        if kind != want:
            raise RuleError(f"{function} needs a {want} expression, got {kind}", file=file, rule=name)
        out = {"any": "bool", "count": "number", "sum": "number", "label": "text"}[function]
        target = CONTRACT.get(name)
        if target is not None:
            if target.type != out:
                raise RuleError(f"'{name}' is a {target.type} column of the contract, {function} gives {out}",
                                file=file, rule=name)
            if target.kind == "choice" and f.label is not None and f.label not in target.choices:
                raise RuleError(f"'{f.label}' is not a value of the contract column '{name}'", file=file, rule=name)
        clauses = (f.clause,) if isinstance(f.clause, str) else tuple(f.clause)
        facts[name] = Fact(name, function, node, when[0] if when else None, f.label, clauses, out)
    household = {c.name: c.type for c in CONTRACT.values()} | {n: f.type for n, f in facts.items()}
    derive: dict[str, ex.Node] = {}
    derive_types: dict[str, str] = {}
    for name, text in spec.derive.items():
        node, kind = typed(name, text, household, "household column or fact")
        target = CONTRACT.get(name)
        if target is None:
            raise RuleError(f"derive writes contract columns only; '{name}' is not one", file=file, rule=name)
        if target.type != kind:
            raise RuleError(f"'{name}' is a {target.type} column of the contract, the expression gives {kind}",
                            file=file, rule=name)
        derive[name], derive_types[name] = node, kind
    evidence: list[tuple[str, str | None]] = []
    position = 0
    for m in PLACEHOLDER.finditer(spec.evidence):
        if m.group(1) not in spec.fields:
            raise RuleError(f"evidence names '{m.group(1)}', not a field of the register", file=file)
        evidence.append((spec.evidence[position:m.start()], m.group(1)))
        position = m.end()
    evidence.append((spec.evidence[position:], None))
    if spec.event is not None:
        if spec.event.kind not in KINDS or spec.event.source not in SOURCES:
            raise RuleError(f"event kind '{spec.event.kind}' or source '{spec.event.source}' is not known to "
                            f"monitoring (kinds: {', '.join(KINDS)}; sources: {', '.join(SOURCES)})", file=file)
        need(spec.event.amount, "event amount", ("number",))
    return Register(spec.id, spec.name, spec.department, spec.description, file, layout, types,
                    spec.id_number, spec.date, spec.until, spec.kind, spec.window, spec.complete, facts, derive,
                    evidence, spec.event, derive_types, maps, field_types={n: f.type for n, f in spec.fields.items()},
                    reads=tuple(dict.fromkeys(n for f in facts.values() for node in (f.expr, f.when) if node is not None
                                        for n in ex.names(node))))


def resolve_registers(paths: list[Path | str], folder: Path) -> list[tuple[Path, Register]]:
    """Each department file with its register: recognised from its headers among the shipped registers."""
    from povertyrules.errors import InputError
    from povertyrules.io.sheets import read_grid
    from povertyrules.layouts.table import find_table

    registers = load_registers(folder)
    layouts = {r.layout.name: r.layout for r in registers.values()}
    by_layout = {r.layout.name: r for r in registers.values()}
    found = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError("文件不存在", "file not found", file=str(path))
        try:
            table = find_table(read_grid(path, limit=40), layouts)
        except InputError:
            raise InputError(f"未识别为部门登记数据（可识别：{'、'.join(r.title.zh for r in registers.values())}）",
                             f"not a known department register (known: {', '.join(registers)})",
                             file=str(path)) from None
        found.append((path, by_layout[table.layout.name]))
    return found
