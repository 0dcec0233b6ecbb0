"""Rule files → a checked `RuleBook`: every name resolved, every type checked, every clause cited.

A rule file (``rules/*.yaml``) declares, for one entity (``household`` or ``member``):

- ``definitions``: derived values (``value:`` expression), e.g. per-capita income;
- ``criteria``: named conditions (``when:``) with a message template showing observed values and thresholds;
- ``decision``: outcome rules in Catala's style. Top-level rules must not apply together; a rule with
  ``exception_of: <id>`` refines its base and is considered only where the base applies.

Every definition, criterion and outcome cites the clause(s) it implements (``clause:``). Parameters live in
``rules/parameters/**.yaml``; override files lay county values over them. `RuleBook.version` hashes the
effective rule set, overrides included.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from povertyrules.errors import ExpressionError, RuleError, RuleErrors
from povertyrules.lang import expr as ex
from povertyrules.lang import safeyaml
from povertyrules.lang.parameters import Parameter, Text, load_parameters, parse_override_values
from povertyrules.model.columns import HOUSEHOLD_COLUMNS, MEMBER_COLUMNS, Column
from povertyrules.shipped import rules_folder

Entity = Literal["household", "member"]
ENTITY_COLUMNS: dict[str, tuple[Column, ...]] = {"household": HOUSEHOLD_COLUMNS, "member": MEMBER_COLUMNS}
_COLUMN_MAPS: dict[str, dict[str, Column]] = {e: {c.name: c for c in cs} for e, cs in ENTITY_COLUMNS.items()}
REVIEW = "review"
MAX_MESSAGE = 1_000


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_RULES":  # the shipped rules folder, found when asked (checkout, else package data)
        return rules_folder()
    raise AttributeError(name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleSpec(_Strict):
    id: str
    clause: list[str]
    description: Text
    value: str | None = None
    when: str | None = None
    message: Text | None = None
    trigger: str | None = None
    outcome: str | None = None
    exception_of: str | None = None
    cites: list[str] = []

    @field_validator("clause", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class DecisionSpec(_Strict):
    name: str
    description: Text
    values: dict[str, Text]
    review: Text
    report_triggers_for: list[str] = []
    outcomes: list[RuleSpec]


class NotEncoded(_Strict):
    clause: str
    reason: str


class RuleFile(_Strict):
    ruleset: str
    entity: Entity
    description: Text
    definitions: list[RuleSpec] = []
    criteria: list[RuleSpec] = []
    decision: DecisionSpec | None = None
    not_encoded: list[NotEncoded] = []


class StepSpec(_Strict):
    id: str
    zh: str
    en: str
    publicity: bool = False
    objection_returns_to: str | None = None
    sources: list[str] | None = None
    source_names: dict[str, dict[str, str]] | None = None  # source -> {zh, en}


class DueSpec(_Strict):
    """When a procedure is due before a decision's outcome is final: the decision, its outcomes, and the
    registered statuses (建档立卡状态) of households it applies to (any, when not given)."""
    decision: str
    outcomes: list[str]
    registered: list[str] | None = None


class ProcedureSpec(_Strict):
    clause: str
    name: dict[str, str] | None = None  # {zh, en}: how a reader names the procedure
    steps: list[StepSpec]
    due: DueSpec | None = None


class OverrideFile(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Rule:
    """One compiled rule: a definition, a criterion or an outcome rule of a decision."""

    id: str
    kind: Literal["definition", "criterion", "outcome"]
    entity: Entity
    ruleset: str
    file: str
    clauses: tuple[str, ...]
    description: Text
    text: str
    expr: ex.Node
    type: str
    message: Text | None = None
    trigger: str | None = None
    decision: str | None = None
    outcome: str | None = None
    exception_of: str | None = None
    cites: tuple[str, ...] = ()

    @property
    def citation(self) -> str:
        return ",".join(self.clauses)


@dataclass(frozen=True)
class Decision:
    name: str
    entity: Entity
    ruleset: str
    file: str
    description: Text
    values: dict[str, Text]
    review: Text
    report_triggers_for: tuple[str, ...]
    outcomes: tuple[str, ...]  # outcome rule ids in file order

    def label(self, value: str, lang: str = "zh") -> str:
        text = self.review if value == REVIEW else self.values.get(value)
        return getattr(text, lang) if text else value


@dataclass
class RuleBook:
    """The effective rule set: parameters (with overrides), rules, decisions, in evaluation order."""

    root: Path
    parameters: dict[str, Parameter]
    rules: dict[str, Rule]
    decisions: dict[str, Decision]
    order: dict[str, list[str]]  # entity -> names of definitions, criteria and decisions in dependency order
    not_encoded: list[NotEncoded] = field(default_factory=list)
    rulesets: dict[str, Text] = field(default_factory=dict)  # ruleset name -> its description
    procedures: dict[str, Any] = field(default_factory=dict)  # rules/procedures/steps.yaml
    override_files: list[str] = field(default_factory=list)
    override_values: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    def columns(self, entity: Entity) -> dict[str, Column]:
        return _COLUMN_MAPS[entity]

    def kind_of(self, entity: Entity, name: str) -> str | None:
        """'column', 'parameter', 'decision', a rule kind, or None for an unknown name."""
        if name in self.decisions and self.decisions[name].entity == entity:
            return "decision"
        if name in self.rules and self.rules[name].entity == entity and self.rules[name].kind != "outcome":
            return self.rules[name].kind
        if name in self.parameters:
            return "parameter"
        if name in self.columns(entity):
            return "column"
        return None

    def used_columns(self, entity: Entity) -> set[str]:
        """The input columns some rule of `entity` reads (directly; definitions and criteria are rules too)."""
        columns, used = self.columns(entity), {"year"} if entity == "household" else set()
        for rule in (r for r in self.rules.values() if r.entity == entity):
            used.update(n for n in ex.names(rule.expr) if n in columns)
            for template in (rule.message.zh, rule.message.en) if rule.message else ():
                used.update(f for _, f, _, _ in string.Formatter().parse(template) if f in columns)
        return used

    def cited_clauses(self) -> set[str]:
        return {c for r in self.rules.values() for c in r.clauses} | {
            c for p in self.parameters.values() for c in p.clause}

    def triggers(self) -> dict[str, Rule]:
        return {r.trigger: r for r in self.rules.values() if r.trigger}


def shipped_provinces(root: Path | str | None = None) -> list[str]:
    """The province files shipped in ``RULES/provinces/`` (Chinese province names)."""
    folder = Path(root or rules_folder()) / "provinces"
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def province_file(root: Path | str | None, province: str) -> Path:
    """The override file of a shipped province (``RULES/provinces/云南省.yaml``); an unknown name is an error."""
    shipped = shipped_provinces(root)
    if province not in shipped:
        listed_zh, listed_en = "、".join(shipped) or "无", ", ".join(shipped) or "none"
        raise RuleError(f"未提供省份“{province}”的监测线文件，已提供：{listed_zh}（其他省份请用 --override 提供）"
                        f" / no province file for '{province}'; shipped: {listed_en} (supply others with --override)",
                        file=str(Path(root or rules_folder()) / "provinces"))
    return Path(root or rules_folder()) / "provinces" / f"{province}.yaml"


def load_rulebook(root: Path | str | None = None, overrides: list[Path | str] | None = None,
                  values: dict[str, Any] | None = None, province: str | None = None) -> RuleBook:
    """Load, check and version the rule set in `root` (default: the shipped ``rules/``).

    `overrides` are override files or folders of them, applied in order; `values` maps a parameter name to
    a bare value (all years) or to ``{date: value}`` and is applied last (for what-if runs). `province` picks a
    shipped province file (``RULES/provinces/<name>.yaml``), applied before `overrides`.
    Raises `RuleErrors` listing every problem found. A rule set whose files have not changed since it was
    last loaded is returned from a cache (treat a `RuleBook` as read-only).
    """
    root = Path(root) if root else rules_folder()
    if province:
        overrides = [province_file(root, province), *(overrides or [])]
    sources = [root, *(Path(o) for o in overrides or [])]
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size)
                  for source in sources if source.exists()
                  for p in sorted([source] if source.is_file() else source.rglob("*.yaml")))
    key = (str(root.resolve()), stamp, repr(values or {}))
    if key not in _CACHE:
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = _load(root, overrides, values)
    return _CACHE[key]


_CACHE: dict[tuple, RuleBook] = {}


def _load(root: Path, overrides: list[Path | str] | None, values: dict[str, Any] | None) -> RuleBook:
    if not (root / "parameters").is_dir():
        raise RuleError("no parameters/ folder: is this a rules directory?", file=str(root))
    parameters = load_parameters(root / "parameters")
    applied: list[str] = []
    for source in overrides or []:
        for path in _override_files(Path(source)):
            parameters = _apply_override(parameters, _read_override(path), str(path))
            applied.append(str(path))
    if values:
        parameters = _apply_override(parameters, values, "overrides")

    files = [_read_rule_file(p) for p in sorted(root.glob("*.yaml"))]
    book = RuleBook(root=root, parameters=parameters, rules={}, decisions={}, order={}, override_files=applied,
                    override_values=dict(values or {}))
    steps = root / "procedures" / "steps.yaml"
    if steps.exists():
        book.procedures = _read_procedures(steps)
    errors: list[RuleError] = []
    for name, parameter in parameters.items():
        if name in _ALL_COLUMNS:
            errors.append(_shadows(name, "parameter", parameter.file))
    for path, spec in files:
        _register(book, path, spec, errors)
    if not errors:
        _check_rules(book, errors)
    if not errors:
        for entity in ENTITY_COLUMNS:
            book.order[entity] = _dependency_order(book, entity, errors)
    if errors:
        raise RuleErrors(errors)
    book.version = _version(book)
    return book


def _read_procedures(path: Path) -> dict[str, Any]:
    """``procedures/steps.yaml``, checked: each procedure's clause and steps; objections return to a step."""
    data = safeyaml.load(path) or {}
    if not isinstance(data, dict):
        raise RuleError("expected a mapping of procedures at the top level", file=str(path))
    found: dict[str, Any] = {}
    for name, raw in data.items():
        try:
            spec = ProcedureSpec.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (name, *first["loc"]))
            raise RuleError(f"{first['msg']} at '{where}'", file=str(path)) from None
        ids = [s.id for s in spec.steps]
        for step in spec.steps:
            if step.objection_returns_to is not None and step.objection_returns_to not in ids:
                raise RuleError(f"step '{step.id}' returns to unknown step '{step.objection_returns_to}'",
                                file=str(path))
        found[str(name)] = spec.model_dump(exclude_none=True)
    return found


def _override_files(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(source.rglob("*.yaml"))
    if not source.exists():
        raise RuleError("override file not found", file=str(source))
    return [source]


def _read_override(path: Path) -> dict[str, Any]:
    data = safeyaml.load(path)
    try:
        spec = OverrideFile.model_validate(data)
    except ValidationError as exc:
        raise RuleError(f"bad override file: {exc}", file=str(path)) from None
    return spec.parameters


def _apply_override(parameters: dict[str, Parameter], raw: dict[str, Any], file: str) -> dict[str, Parameter]:
    updated = dict(parameters)
    for name, spec in raw.items():
        if name not in parameters:
            hint = difflib.get_close_matches(name, parameters, n=1)
            raise RuleError(f"unknown parameter '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else ""),
                            file=file)
        new_values, replace = parse_override_values(spec, file, name)
        updated[name] = parameters[name].with_values(new_values, file, replace=replace)
    return updated


def _read_rule_file(path: Path) -> tuple[Path, RuleFile]:
    data = safeyaml.load(path)
    try:
        return path, RuleFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        rule = _rule_id_at(data, first["loc"])
        raise RuleError(f"{first['msg']} at '{where}'", file=str(path), rule=rule) from None


def _rule_id_at(data: Any, loc: tuple[Any, ...]) -> str | None:
    node = data
    found = None
    for key in loc:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            found = node["id"]
    return found


def _register(book: RuleBook, path: Path, spec: RuleFile, errors: list[RuleError]) -> None:
    file = str(path)
    groups: list[tuple[Literal["definition", "criterion", "outcome"], list[RuleSpec]]] = [
        ("definition", spec.definitions), ("criterion", spec.criteria),
        ("outcome", spec.decision.outcomes if spec.decision else [])]
    for kind, rules in groups:
        for r in rules:
            needed = "value" if kind == "definition" else "when"
            text = getattr(r, needed)
            if text is None:
                errors.append(RuleError(f"a {kind} needs '{needed}'", file=file, rule=r.id))
                continue
            if kind == "criterion" and r.message is None:
                errors.append(RuleError("a criterion needs a 'message' showing observed values", file=file,
                                        rule=r.id))
            if kind == "outcome" and r.outcome is None:
                errors.append(RuleError("an outcome rule needs 'outcome'", file=file, rule=r.id))
            if r.id in _ALL_COLUMNS:
                errors.append(_shadows(r.id, kind, file))
                continue
            if r.id in book.rules or r.id in book.decisions or r.id in book.parameters:
                errors.append(RuleError(f"id '{r.id}' is defined twice", file=file, rule=r.id))
                continue
            try:
                tree = ex.parse(text)
            except ExpressionError as exc:
                errors.append(RuleError(exc.message, file=file, rule=r.id, position=exc.position))
                continue
            book.rules[r.id] = Rule(
                id=r.id, kind=kind, entity=spec.entity, ruleset=spec.ruleset, file=file,
                clauses=tuple(r.clause), description=r.description, text=text, expr=tree, type="",
                message=r.message, trigger=r.trigger, outcome=r.outcome, exception_of=r.exception_of,
                cites=tuple(r.cites), decision=spec.decision.name if kind == "outcome" and spec.decision else None)
    if spec.decision:
        d = spec.decision
        if d.name in _ALL_COLUMNS:
            errors.append(_shadows(d.name, "decision", file))
        if d.name in book.decisions or d.name in book.rules:
            errors.append(RuleError(f"decision '{d.name}' is defined twice", file=file))
        book.decisions[d.name] = Decision(
            name=d.name, entity=spec.entity, ruleset=spec.ruleset, file=file, description=d.description,
            values=d.values, review=d.review, report_triggers_for=tuple(d.report_triggers_for),
            outcomes=tuple(r.id for r in d.outcomes))
    book.not_encoded.extend(spec.not_encoded)
    book.rulesets[spec.ruleset] = spec.description


_ALL_COLUMNS = {c.name for columns in ENTITY_COLUMNS.values() for c in columns}


def _shadows(name: str, kind: str, file: str) -> RuleError:
    """A name that is also an input column would silently replace that column in every rule."""
    return RuleError(f"{kind} '{name}' has the name of an input column (a column of the contract); rename it "
                     f"/ {kind} 名称“{name}”与输入列同名，请改名", file=file, rule=name)


class _DependencyFailed(Exception):
    """A rule refers to a rule that has its own error (reported once, for that rule)."""


def _check_rules(book: RuleBook, errors: list[RuleError]) -> None:
    """Resolve names, check types, outcomes, exceptions, citations and message placeholders."""
    typed: dict[str, str] = {}
    failed: dict[str, RuleError] = {}

    def type_of(entity: Entity, name: str, stack: tuple[str, ...]) -> str:
        kind = book.kind_of(entity, name)
        if kind == "column":
            return book.columns(entity)[name].type
        if kind == "parameter":
            return book.parameters[name].type
        if kind == "decision":
            return "text"
        if kind is None:
            known = [*book.columns(entity), *book.parameters,
                     *(r for r, v in book.rules.items() if v.entity == entity and v.kind != "outcome"),
                     *(d for d, v in book.decisions.items() if v.entity == entity)]
            hint = difflib.get_close_matches(name, known, n=1)
            raise ExpressionError(f"unknown name '{name}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        if name in stack:
            raise ExpressionError(f"'{name}' depends on itself: {' -> '.join((*stack, name))}")
        return typed_rule(book.rules[name], (*stack, name))

    def typed_rule(rule: Rule, stack: tuple[str, ...]) -> str:
        if rule.id in failed:
            raise _DependencyFailed
        if rule.id not in typed:
            try:
                typed[rule.id] = infer(rule, stack)
            except ExpressionError as exc:
                failed[rule.id] = RuleError(exc.message, file=rule.file, rule=rule.id, position=exc.position)
                raise _DependencyFailed from None
        return typed[rule.id]

    def infer(rule: Rule, stack: tuple[str, ...]) -> str:
        def resolve(node: ex.Name) -> str:
            try:
                return type_of(rule.entity, node.name, stack)
            except ExpressionError as exc:
                position = node.pos if exc.position is None else exc.position
                raise ExpressionError(exc.message, position) from None
        for node in ex.walk(rule.expr):
            if isinstance(node, ex.Call) and node.function == "last_year":
                arg = node.args[0]
                if not (isinstance(arg, ex.Name) and arg.name in book.parameters):
                    raise ExpressionError("last_year() takes a parameter name", node.pos)
        return ex.infer_type(rule.expr, resolve)

    for rule in list(book.rules.values()):
        try:
            result = typed_rule(rule, (rule.id,))
        except _DependencyFailed:
            continue
        if rule.kind != "definition" and result != "bool":
            errors.append(RuleError(f"'when' must be a condition (bool), got {result}", file=rule.file,
                                    rule=rule.id))
        book.rules[rule.id] = Rule(**{**rule.__dict__, "type": result})
        _check_rule_links(book, book.rules[rule.id], errors)
    errors.extend(failed.values())
    for decision in book.decisions.values():
        for value in decision.report_triggers_for:
            if value not in decision.values:
                errors.append(RuleError(f"report_triggers_for names unknown outcome '{value}'",
                                        file=decision.file))


def _check_rule_links(book: RuleBook, rule: Rule, errors: list[RuleError]) -> None:
    def fail(message: str) -> None:
        errors.append(RuleError(message, file=rule.file, rule=rule.id))

    if not rule.clauses:
        fail("a rule must cite at least one clause")
    for template in (rule.message.zh, rule.message.en) if rule.message else ():
        if ";" in template:
            fail("messages may not contain ';' (it separates the reasons in a decision row)")
        if len(template) > MAX_MESSAGE:
            fail(f"message longer than {MAX_MESSAGE} characters")
            continue
        try:
            fields = list(string.Formatter().parse(template))
        except ValueError as exc:
            fail(f"bad message template ({exc}); write '{{{{' and '}}}}' for literal braces")
            continue
        for _, field_name, _, _ in fields:
            if field_name and book.kind_of(rule.entity, field_name.split(":")[0]) is None:
                fail(f"message placeholder '{{{field_name}}}' is not a known name")
    if rule.kind != "outcome":
        return
    decision = book.decisions[rule.decision or ""]
    if rule.outcome not in decision.values:
        fail(f"outcome '{rule.outcome}' is not one of {sorted(decision.values)}")
    if rule.exception_of and rule.exception_of not in decision.outcomes:
        fail(f"exception_of '{rule.exception_of}' is not an outcome rule of decision '{decision.name}'")
    for cited in rule.cites:
        if book.kind_of(rule.entity, cited) != "criterion":
            fail(f"cites '{cited}', which is not a criterion")


def _dependency_order(book: RuleBook, entity: Entity, errors: list[RuleError]) -> list[str]:
    """Definitions, criteria and decisions of `entity`, each after everything it refers to."""

    def deps(name: str) -> list[str]:
        if name in book.decisions:
            refs = [n for rid in book.decisions[name].outcomes
                    for n in (*ex.names(book.rules[rid].expr), *book.rules[rid].cites)]
        else:
            refs = ex.names(book.rules[name].expr)
        return [n for n in refs if book.kind_of(entity, n) in ("definition", "criterion", "decision")]

    names = [r.id for r in book.rules.values() if r.entity == entity and r.kind != "outcome"]
    names += [d.name for d in book.decisions.values() if d.entity == entity]
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            errors.append(RuleError(f"circular reference: {' -> '.join((*path, name))}", rule=name))
            return
        state[name] = 1
        for dep in deps(name):
            visit(dep, (*path, name))
        state[name] = 2
        order.append(name)

    for name in names:
        visit(name, ())
    return order


def _version(book: RuleBook) -> str:
    """A short hash of everything that can change a decision or its reasons."""
    payload = {
        "parameters": {n: p.model_dump(mode="json", exclude={"file"}) for n, p in sorted(book.parameters.items())},
        "rules": {r.id: [r.kind, r.entity, r.clauses, ex.render(r.expr), r.message and r.message.model_dump(),
                         r.trigger, r.outcome, r.exception_of, r.cites, r.decision]
                  for r in book.rules.values()},
        "decisions": {d.name: [list(d.values), d.report_triggers_for, d.outcomes]
                      for d in book.decisions.values()},
        "procedures": book.procedures,  # the steps that make a decision final are part of the rule set
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
