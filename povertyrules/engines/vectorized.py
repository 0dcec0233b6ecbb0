"""The batch engine: evaluates a `RuleBook` on a whole frame at once with numpy, in three-valued logic.

Every value is a `Vec`: values plus a `known` mask. A blank input cell is unknown, never "no" and never 0;
``and``/``or``/``not`` follow Kleene's logic (false and unknown = false; true or unknown = true), so an
unknown value changes a decision only when it could. Decisions resolve their outcome rules Catala-style in
the same logic (`povertyrules.engines.outcomes`): exactly one top-level rule applies, an exception refines its
base, and the outcome is ``review`` only where the unknown conditions leave more than one outcome possible.
Each row's combination of outcome-rule states is looked up in the decision's table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from povertyrules.engines.outcomes import UNKNOWN, outcome_table
from povertyrules.errors import RuleError
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import REVIEW, Decision, Entity, RuleBook


@dataclass
class Vec:
    """A column of values with a mask of which ones are known (scalars broadcast)."""

    values: Any
    known: Any

    def true(self) -> np.ndarray:
        return np.asarray(self.known, dtype=bool) & np.asarray(self.values, dtype=bool)

    def false(self) -> np.ndarray:
        return np.asarray(self.known, dtype=bool) & ~np.asarray(self.values, dtype=bool)

    def unknown(self) -> np.ndarray:
        return np.asarray(~np.asarray(self.known, dtype=bool), dtype=bool)

    def full(self, n: int) -> Vec:
        values, known = self.values, self.known
        if (isinstance(values, np.ndarray) and values.shape == (n,) and isinstance(known, np.ndarray)
                and known.shape == (n,) and known.dtype == bool):
            return self  # already one value a row (the common case: nothing to broadcast)
        return Vec(np.broadcast_to(self.values, (n,)), np.broadcast_to(np.asarray(self.known, bool), (n,)))


@dataclass
class Evaluation:
    """Everything one evaluation computed, kept for decisions, reasons and explanations."""

    book: RuleBook
    entity: Entity
    n: int
    env: dict[str, Vec] = field(default_factory=dict)  # columns, definitions, criteria, decisions
    conditions: dict[str, Vec] = field(default_factory=dict)  # outcome rule id -> its condition
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # decision -> index into outcome_values
    outcome_values: dict[str, list[str]] = field(default_factory=dict)
    cited: dict[str, np.ndarray] = field(default_factory=dict)  # outcome rule id -> on the decisive path
    possible: dict[str, np.ndarray] = field(default_factory=dict)  # decision -> bit mask of possible outcomes
    #: decision -> per row "" or why its rules fail there (rules applying together, or none applying)
    failures: dict[str, np.ndarray] = field(default_factory=dict)

    def outcome(self, decision: str) -> np.ndarray:
        """The decision's outcome per row, as text (``review`` where undecidable)."""
        return np.asarray(self.outcome_values[decision], dtype=object)[self.codes[decision]]

    def failed(self) -> np.ndarray:
        """Rows on which some decision's rules apply together or none applies (a fault of the rule set)."""
        out = np.zeros(self.n, dtype=bool)
        for failure in self.failures.values():
            out |= failure != ""
        return out

    def failure(self, row: int) -> str:
        """Why the rule set fails on `row` (Chinese / English), naming the decision and its rules."""
        return "；".join(f[row] for f in self.failures.values() if f[row])

    def verdict(self, name: str) -> np.ndarray:
        """A criterion's or outcome rule's verdict per row as a code: 0 false, 1 true, 2 unknown."""
        v = self.value(name)
        return np.where(v.known, np.asarray(v.values, dtype=bool), 2).astype(np.int8)

    def value(self, name: str) -> Vec:
        return (self.env.get(name) or self.conditions[name]).full(self.n)

    def row(self, i: int) -> Evaluation:
        """Row `i` alone, as a one-row evaluation (for explaining one household of a batch)."""
        def one(v: Vec) -> Vec:
            full = v.full(self.n)
            return Vec(np.asarray(full.values)[i:i + 1], np.asarray(full.known)[i:i + 1])

        return Evaluation(self.book, self.entity, 1, {k: one(v) for k, v in self.env.items()},
                          {k: one(v) for k, v in self.conditions.items()},
                          {k: v[i:i + 1] for k, v in self.codes.items()}, self.outcome_values,
                          {k: v[i:i + 1] for k, v in self.cited.items()},
                          {k: v[i:i + 1] for k, v in self.possible.items()},
                          {k: v[i:i + 1] for k, v in self.failures.items()})


def column_vec(series: pd.Series, kind: str) -> Vec:
    """An input column as a `Vec` (kind: 'number', 'bool' or 'text'; text becomes a fixed-width str array)."""
    array = series.array
    if isinstance(array, pd.Categorical):  # choice columns: index the few categories by code
        codes = np.asarray(array.codes)
        labels = np.asarray([*array.categories.astype(str), ""], dtype=str)
        return Vec(labels[codes], codes >= 0)
    if kind == "bool" and isinstance(array, pd.arrays.BooleanArray):
        return Vec(np.asarray(array._data), ~np.asarray(array._mask))
    if kind == "number":
        if not pd.api.types.is_float_dtype(series.dtype):
            series = pd.to_numeric(series, errors="coerce")
        values = series.to_numpy(dtype=float, na_value=np.nan)
        return Vec(values, ~np.isnan(values))
    known = series.notna().to_numpy(dtype=bool)
    if kind == "bool":
        return Vec(series.fillna(False).to_numpy(dtype=bool), known)
    return Vec(series.astype(object).where(known, "").to_numpy(dtype=str), known)


def evaluate(book: RuleBook, frame: pd.DataFrame, entity: Entity = "household",
             forced: dict[str, tuple[Vec, np.ndarray]] | None = None) -> Evaluation:
    """Evaluate every definition, criterion and decision of `entity` on `frame`.

    `frame` holds typed input columns (see `povertyrules.model.records`); for households a ``year``
    column chooses the parameter values in force for each row. Missing optional columns are unknown.
    `forced` maps a column, definition or criterion to (values, rows): on those rows the values replace what
    the data or the rules give (for counterfactuals); everything downstream follows.
    """
    used = book.used_columns(entity)
    columns = {name: column_vec(frame[name], column.type)
               for name, column in book.columns(entity).items() if name in frame and name in used}
    years = frame["year"].to_numpy() if "year" in frame else None
    return evaluate_columns(book, columns, len(frame), entity, years, forced)


def evaluate_columns(book: RuleBook, columns: dict[str, Vec], n: int, entity: Entity = "household",
                     years: np.ndarray | None = None,
                     forced: dict[str, tuple[Vec, np.ndarray]] | None = None) -> Evaluation:
    """`evaluate` on columns already held as `Vec` (scalars broadcast): no DataFrame needed."""
    forced = forced or {}
    result = Evaluation(book, entity, n)
    for name, column in book.columns(entity).items():
        if name in columns:
            result.env[name] = columns[name]
        else:  # an absent column: unknown everywhere (scalars broadcast)
            result.env[name] = Vec({"number": 0.0, "bool": False}.get(column.type, ""), False)
        if name in forced:
            result.env[name] = _override(result.env[name].full(n), *forced[name])
    evaluator = _Evaluator(book, entity, result, years)
    if years is not None:
        for name in book.parameters:
            result.env[name] = evaluator.parameter(name, 0)
    for name in book.order[entity]:
        if name in book.decisions:
            evaluator.decide(book.decisions[name])
        else:
            result.env[name] = evaluator.eval(book.rules[name].expr)
            if name in forced:
                result.env[name] = _override(result.env[name].full(n), *forced[name])
    return result


def _override(computed: Vec, values: Vec, rows: np.ndarray) -> Vec:
    return Vec(np.where(rows, values.values, computed.values), np.where(rows, values.known, computed.known))


def evaluate_expression(result: Evaluation, node: ex.Node) -> Vec:
    """Evaluate a sub-expression against a finished evaluation (e.g. one side of a comparison)."""
    years = result.env["year"].values if "year" in result.env else None
    return _Evaluator(result.book, result.entity, result, years).eval(node).full(result.n)


class _Evaluator:
    def __init__(self, book: RuleBook, entity: Entity, result: Evaluation, years: np.ndarray | None):
        self.book, self.entity, self.result, self.years = book, entity, result, years
        self._params: dict[tuple[str, int], Vec] = {}
        self._unique_years: np.ndarray | None = None

    # -- expressions -----------------------------------------------------------------------------
    def eval(self, node: ex.Node) -> Vec:
        match node:
            case ex.Const(value=v):
                return Vec(v, True)
            case ex.Name(name=name):
                if name in self.result.env:
                    return self.result.env[name]
                return self.parameter(name, 0)
            case ex.Neg(operand=o):
                v = self.eval(o)
                return Vec(-v.values, v.known)
            case ex.Arith(op=op, left=a, right=b):
                return self.arith(op, self.eval(a), self.eval(b))
            case ex.Compare(op="==" | "!=" as op, left=a, right=b) if self._decision_operand(a, b):
                name, value = self._decision_operand(a, b)
                return self.decision_test(name, {value}, negate=op == "!=")
            case ex.Compare(op=op, left=a, right=b):
                return self.compare(op, self.eval(a), self.eval(b))
            case ex.Logic(op=op, operands=ops):
                vecs = [self.eval(o) for o in ops]
                combine = _kleene_and if op == "and" else _kleene_or
                out = vecs[0]
                for v in vecs[1:]:
                    out = combine(out, v)
                return out
            case ex.Not(operand=o):
                v = self.eval(o)
                return Vec(~np.asarray(v.values, dtype=bool), v.known)
            case ex.In(operand=ex.Name(name=name), values=values, negate=negate) if name in self.result.possible:
                return self.decision_test(name, set(values), negate)
            case ex.In(operand=o, values=values, negate=negate):
                v = self.eval(o)
                hit = np.zeros(np.shape(v.values), dtype=bool)
                for value in values:  # a short literal list: one vectorised comparison each
                    hit |= np.asarray(v.values == value, dtype=bool)
                return Vec(~hit if negate else hit, v.known)
            case ex.Known(operand=o, negate=negate):
                known = np.asarray(self.eval(o).known, dtype=bool)
                return Vec(~known if negate else known, True)
            case ex.Call(function=fn, args=args):
                return self.call(fn, args)
        raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover

    def _decision_operand(self, a: ex.Node, b: ex.Node) -> tuple[str, str] | None:
        """(decision, value) for a comparison of a decided name with a text constant, else None."""
        for x, y in ((a, b), (b, a)):
            if isinstance(x, ex.Name) and x.name in self.result.possible and isinstance(y, ex.Const):
                return x.name, y.value  # type: ignore[return-value]
        return None

    def parameter(self, name: str, offset: int) -> Vec:
        """A parameter's value for each row's year (+ offset); unknown where none is in force."""
        parameter = self.book.parameters[name]
        if self.years is None:
            raise RuleError(f"parameter '{name}' needs a year, but the {self.entity} entity has none")
        key = (name, offset)
        if key not in self._params:
            if self._unique_years is None:
                self._unique_years = pd.unique(self.years)
            unique = self._unique_years
            lookup = {int(y): parameter.at(int(y) + offset) for y in unique}
            if len(unique) == 1:
                v = lookup[int(unique[0])]
                self._params[key] = Vec(v if v is not None else 0.0, v is not None)
            else:
                values = np.zeros(len(self.years), dtype=float)
                known = np.zeros(len(self.years), dtype=bool)
                for y, v in lookup.items():
                    if v is not None:
                        rows = self.years == y
                        values[rows], known[rows] = float(v), True
                self._params[key] = Vec(values, known)
        return self._params[key]

    @staticmethod
    def arith(op: str, a: Vec, b: Vec) -> Vec:
        known = a.known & b.known
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if op == "+":
                return Vec(a.values + b.values, known)
            if op == "-":
                return Vec(a.values - b.values, known)
            if op == "*":
                return Vec(a.values * b.values, known)
            divisor_ok = b.values != 0
            return Vec(np.where(divisor_ok, a.values / np.where(divisor_ok, b.values, 1), 0.0),
                       known & divisor_ok)

    @staticmethod
    def compare(op: str, a: Vec, b: Vec) -> Vec:
        known = a.known & b.known
        with np.errstate(invalid="ignore"):
            match op:
                case "<":
                    values = a.values < b.values
                case "<=":
                    values = a.values <= b.values
                case ">":
                    values = a.values > b.values
                case ">=":
                    values = a.values >= b.values
                case "==":
                    values = a.values == b.values
                case _:
                    values = a.values != b.values
        return Vec(np.asarray(values, dtype=bool), known)

    def call(self, fn: str, args: tuple[ex.Node, ...]) -> Vec:
        if fn == "last_year":
            assert isinstance(args[0], ex.Name)
            return self.parameter(args[0].name, -1)
        vecs = [self.eval(a) for a in args]
        if fn == "abs":
            return Vec(np.abs(vecs[0].values), vecs[0].known)
        if fn == "floor":
            return Vec(np.floor(np.asarray(vecs[0].values, dtype=float)), vecs[0].known)
        if fn == "coalesce":
            out = vecs[-1]
            for v in reversed(vecs[:-1]):
                out = Vec(np.where(v.known, v.values, out.values), v.known | out.known)
            return out
        reduce = np.minimum if fn == "min" else np.maximum
        out = vecs[0]
        for v in vecs[1:]:
            out = Vec(reduce(out.values, v.values), out.known & v.known)
        return out

    # -- decisions -------------------------------------------------------------------------------
    def decide(self, decision: Decision) -> None:
        """Resolve the decision's outcome rules for every row (see `povertyrules.engines.outcomes`)."""
        n = self.result.n
        table = outcome_table(self.book, decision.name)
        values = [*decision.values, REVIEW]
        code = {v: i for i, v in enumerate(values)}
        codes = np.zeros(n, dtype=np.int64)
        for i, r in enumerate(table.rules):
            c = self.eval(r.expr).full(n)
            self.result.conditions[r.id] = c
            known = np.asarray(c.known, dtype=bool)
            state = np.where(known, np.asarray(c.values, dtype=bool).astype(np.int64), UNKNOWN)
            codes += state * 3 ** i
        present = np.flatnonzero(np.bincount(codes, minlength=table.size))  # the combinations that occur
        position = np.zeros(table.size, dtype=np.int64)
        position[present] = np.arange(len(present))
        inverse = position[codes]
        resolutions = [table.resolve(int(c)) for c in present]
        failure = np.asarray([_failure(decision.name, res) for res in resolutions], dtype=object)
        self.result.failures[decision.name] = failure[inverse]
        bit = {v: 1 << i for i, v in enumerate(decision.values)}
        possible = np.asarray([sum(bit[v] for v in res.possible) for res in resolutions], dtype=np.int64)
        outcome = np.asarray([code[res.decided] if res.decided is not None else code[REVIEW]
                              for res in resolutions], dtype=np.int16)
        for r in table.rules:
            self.result.cited[r.id] = np.asarray([r.id in res.cited for res in resolutions], dtype=bool)[inverse]
        out = outcome[inverse]
        self.result.codes[decision.name] = out
        self.result.possible[decision.name] = possible[inverse]
        self.result.outcome_values[decision.name] = values
        self.result.env[decision.name] = Vec(np.asarray(values, dtype=str)[out], out != code[REVIEW])

    def decision_test(self, name: str, accepted: set[str], negate: bool) -> Vec:
        """``decision in accepted`` (or not) over the decision's possible outcomes: unknown only where some
        possible outcome is accepted and another is not."""
        decision = self.book.decisions[name]
        wanted = sum(1 << i for i, v in enumerate(decision.values) if v in accepted)
        possible = self.result.possible[name]
        inside, outside = (possible & ~wanted) == 0, (possible & wanted) == 0
        return Vec(outside if negate else inside, inside | outside)


def _failure(decision: str, res) -> str:
    if res.conflict:
        return (f"决定 {decision} 的规则 {list(res.conflict)} 同时适用（须互斥或设为例外） / rules "
                f"{list(res.conflict)} of decision '{decision}' apply together; make one an exception of the "
                "other or their conditions exclusive")
    if res.nothing_applies:
        return (f"决定 {decision} 没有任何判定规则适用（须覆盖所有情形） / no outcome rule of decision "
                f"'{decision}' applies; the top-level rules must cover every case")
    return ""


def _kleene_and(a: Vec, b: Vec) -> Vec:
    av, bv = np.asarray(a.values, bool), np.asarray(b.values, bool)
    a_false, b_false = a.known & ~av, b.known & ~bv
    return Vec(av & bv & a.known & b.known, (a.known & b.known) | a_false | b_false)


def _kleene_or(a: Vec, b: Vec) -> Vec:
    av, bv = np.asarray(a.values, bool), np.asarray(b.values, bool)
    a_true, b_true = a.known & av, b.known & bv
    return Vec(a_true | b_true, (a.known & b.known) | a_true | b_true)
