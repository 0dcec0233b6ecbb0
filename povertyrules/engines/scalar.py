"""A row-at-a-time interpreter of the same rule tree: plain Python values, ``None`` for unknown.

It is the reference the batch engine is checked against (a property test), the per-row baseline in the
benchmarks, and what computes definitions for the durable_rules engine's facts.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from povertyrules.engines.outcomes import UNKNOWN, outcome_table, test_values
from povertyrules.errors import RuleError
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import REVIEW, Entity, RuleBook

Value = float | bool | str | None


def evaluate_row(book: RuleBook, row: dict[str, Any], entity: Entity = "household",
                 definitions_only: bool = False) -> dict[str, Value]:
    """Every definition, criterion and decision of `entity` for one typed row (``year`` picks parameters);
    with `definitions_only`, just the parameters and definitions (what a durable_rules fact carries)."""
    env: dict[str, Value] = {name: _clean(row.get(name)) for name in book.columns(entity)}
    year = int(row["year"]) if row.get("year") is not None else None
    if year is not None:
        env.update(parameters_for(book, year))
    if definitions_only:
        for rule in _definitions(book, entity):
            env[rule.id] = evaluate_node(rule.expr, env, book, year)
        return env
    for name in book.order[entity]:
        if name in book.decisions:
            env[name] = decide(book, name, env, year)
        else:
            env[name] = evaluate_node(book.rules[name].expr, env, book, year)
    return env


_DEFINITIONS: dict[tuple[int, str], list] = {}


def _definitions(book: RuleBook, entity: Entity) -> list:
    """The definitions of `entity` in dependency order (cached per rule set)."""
    key = (id(book), book.version + entity)
    if key not in _DEFINITIONS:
        _DEFINITIONS[key] = [book.rules[n] for n in book.order[entity]
                             if n in book.rules and book.rules[n].kind == "definition"]
    return _DEFINITIONS[key]


_PARAMETERS: dict[tuple[int, str, int], dict[str, Value]] = {}


def parameters_for(book: RuleBook, year: int) -> dict[str, Value]:
    """Every parameter's value in force for `year` (cached per rule set and year)."""
    key = (id(book), book.version, year)
    if key not in _PARAMETERS:
        _PARAMETERS[key] = {name: p.at(year) for name, p in book.parameters.items()}
    return _PARAMETERS[key]


def _clean(value: Any) -> Value:
    if type(value) in (float, str, bool) and value == value:  # the common case, quickly
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):  # NA, NaN: unknown
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def evaluate_node(node: ex.Node, env: dict[str, Value], book: RuleBook, year: int | None) -> Value:
    """Kleene's three-valued logic over None; arithmetic with an unknown (or a division by 0) is unknown."""
    def ev(n: ex.Node) -> Value:
        return evaluate_node(n, env, book, year)

    match node:
        case ex.Const(value=v):
            return v
        case ex.Name(name=name):
            return env.get(name)
        case ex.Neg(operand=o):
            v = ev(o)
            return None if v is None else -v
        case ex.Arith(op=op, left=a, right=b):
            x, y = ev(a), ev(b)
            if x is None or y is None or (op == "/" and y == 0):
                return None
            return {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else None}[op]
        case ex.Compare(op="==" | "!=" as op, left=ex.Const(value=value), right=ex.Name(name=name)) \
                if possible_key(name) in env:
            return ev(ex.Compare(op, ex.Name(name, node.pos), ex.Const(value, node.pos), node.pos))
        case ex.Compare(op="==" | "!=" as op, left=ex.Name(name=name), right=ex.Const(value=value)) \
                if possible_key(name) in env:
            found = test_values(env[possible_key(name)], frozenset({value}))  # type: ignore[arg-type]
            return found if found is None or op == "==" else not found
        case ex.Compare(op=op, left=a, right=b):
            x, y = ev(a), ev(b)
            if x is None or y is None:
                return None
            return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y, "==": x == y, "!=": x != y}[op]
        case ex.Logic(op="and", operands=ops):
            values = [ev(o) for o in ops]
            return False if False in values else (None if None in values else True)
        case ex.Logic(op="or", operands=ops):
            values = [ev(o) for o in ops]
            return True if True in values else (None if None in values else False)
        case ex.Not(operand=o):
            v = ev(o)
            return None if v is None else not v
        case ex.In(operand=ex.Name(name=name), values=values, negate=negate) if possible_key(name) in env:
            found = test_values(env[possible_key(name)], frozenset(values))  # type: ignore[arg-type]
            return found if found is None or not negate else not found
        case ex.In(operand=o, values=values, negate=negate):
            v = ev(o)
            return None if v is None else ((v in values) != negate)
        case ex.Known(operand=o, negate=negate):
            return (ev(o) is None) == negate
        case ex.Call(function="last_year", args=(ex.Name(name=name),)):
            return book.parameters[name].at(year - 1) if year is not None else None
        case ex.Call(function="coalesce", args=args):
            return next((v for v in map(ev, args) if v is not None), None)
        case ex.Call(function=fn, args=args):
            values = [ev(a) for a in args]
            if None in values:
                return None
            if fn in ("abs", "floor"):
                return abs(values[0]) if fn == "abs" else float(math.floor(values[0]))
            return min(values) if fn == "min" else max(values)
    raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover


def decide(book: RuleBook, name: str, env: dict[str, Value], year: int | None) -> Value:
    """Catala-style exceptions in three-valued logic (`povertyrules.engines.outcomes`): the one possible
    outcome, or None (review) where the unknown conditions leave more than one. The possible outcomes are kept
    in `env` under `possible_key(name)` for rules that test this decision's value."""
    table = outcome_table(book, name)
    states = []
    for rule in table.rules:
        v = evaluate_node(rule.expr, env, book, year)
        states.append(UNKNOWN if v is None else int(bool(v)))
    res = table.resolve(table.code(states))
    if res.conflict:
        raise RuleError(f"rules {list(res.conflict)} apply together", rule=res.conflict[0])
    if res.nothing_applies:
        raise RuleError(f"no outcome rule of decision '{name}' applies", file=book.decisions[name].file)
    env[possible_key(name)] = res.possible  # type: ignore[assignment]
    return res.decided


def possible_key(name: str) -> str:
    """Where `evaluate_row` keeps a decision's possible outcomes (not a name a rule can use)."""
    return f"{name}#possible"


def outcome_text(value: Value) -> str:
    """A decision value as the batch engine reports it (unknown → review)."""
    return REVIEW if value is None else str(value)
