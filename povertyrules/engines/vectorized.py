"""The batch engine: evaluates a `RuleBook` on a whole frame at once with numpy, in three-valued logic.

Every value is a `Vec`: values plus a `known` mask; a condition is held as one int8 verdict per row in
Kleene's order (false 0 < unknown 1 < true 2), so ``and``/``or``/``not`` are `np.minimum`, `np.maximum` and
``2 - v`` (false and unknown = false; true or unknown = true): an unknown value changes a decision only when
it could. Decisions resolve their outcome rules Catala-style in the same logic
(`povertyrules.engines.outcomes`, the plan every engine evaluates): exactly one top-level rule applies, an
exception refines its base, and the outcome is ``review`` only where the unknown conditions leave more than one
outcome possible. Each row's combination of outcome-rule verdicts is looked up in the decision's plan
(`DecisionPlan`) for its outcome and its possible outcomes; what it cites and why the rules fail there are
looked up from the same combination only when asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from povertyrules.engines.outcomes import KLEENE_STATES, OutcomeTable, outcome_table
from povertyrules.engines.scalar import parameters_for
from povertyrules.errors import RuleError
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import REVIEW, Decision, Entity, RuleBook


class Vec:
    """A column of values with a mask of which ones are known (scalars broadcast).

    A condition may be held instead as *verdicts* in Kleene's order — one int8 per row, ``0`` false < ``1``
    unknown < ``2`` true — so that ``and`` is `np.minimum`, ``or`` is `np.maximum` and ``not`` is ``2 - v``, one
    pass each. Either form is derived from the other the first time it is asked for, and kept.
    """

    __slots__ = ("_derive", "_kleene", "_known", "_values")

    def __init__(self, values: Any, known: Any):
        self._values, self._known, self._kleene, self._derive = values, known, None, None

    @classmethod
    def of_verdicts(cls, kleene: Any) -> Vec:
        """A condition from its Kleene verdicts (0 false, 1 unknown, 2 true)."""
        out = cls(None, None)
        out._kleene = kleene
        return out

    @classmethod
    def deferred(cls, derive: Callable[[], tuple[Any, Any]]) -> Vec:
        """(values, known) worked out by `derive` only when first asked for."""
        out = cls(None, None)
        out._derive = derive
        return out

    def _derived(self) -> None:
        if self._derive is not None:
            self._values, self._known = self._derive()
            self._derive = None
        else:  # from the verdicts
            self._values, self._known = self._kleene == K_TRUE, self._kleene != K_UNKNOWN

    @property
    def values(self) -> Any:
        if self._values is None:
            self._derived()
        return self._values

    @property
    def known(self) -> Any:
        if self._known is None:
            self._derived()
        return self._known

    @property
    def kleene(self) -> Any:
        """The condition's verdicts in Kleene's order (int8: 0 false, 1 unknown, 2 true)."""
        if self._kleene is None:
            self._kleene = _verdicts(self.values, self.known)
        return self._kleene

    def true(self) -> np.ndarray:
        if self._kleene is not None:
            return np.asarray(self._kleene == K_TRUE)
        return np.asarray(self.known, dtype=bool) & np.asarray(self.values, dtype=bool)

    def false(self) -> np.ndarray:
        if self._kleene is not None:
            return np.asarray(self._kleene == K_FALSE)
        return np.asarray(self.known, dtype=bool) & ~np.asarray(self.values, dtype=bool)

    def unknown(self) -> np.ndarray:
        if self._kleene is not None:
            return np.asarray(self._kleene == K_UNKNOWN)
        return np.asarray(~np.asarray(self.known, dtype=bool), dtype=bool)

    def full(self, n: int) -> Vec:
        """The same column with every form held at length `n` (itself where it already is)."""
        if self._derive is not None:  # deferred values are made at full length
            return self
        if _at_length(self._values, n) and _at_length(self._known, n) and _at_length(self._kleene, n):
            return self
        out = Vec(None, None)
        if self._values is not None:
            out._values = np.broadcast_to(self._values, (n,))
            out._known = np.broadcast_to(np.asarray(self._known, bool), (n,))
        if self._kleene is not None:
            out._kleene = np.broadcast_to(self._kleene, (n,))
        return out

    def take(self, rows: Any) -> Vec:
        """The rows `rows` (an index array or a slice) of the full-length column `self`."""
        if self._derive is not None:
            self._derived()
        out = Vec(None, None)
        if self._values is not None:
            out._values, out._known = np.asarray(self._values)[rows], np.asarray(self._known)[rows]
        if self._kleene is not None:
            out._kleene = np.asarray(self._kleene)[rows]
        return out

    def __repr__(self) -> str:
        return f"Vec(values={self.values!r}, known={self.known!r})"


class Coded(Vec):
    """A choice column held as its category codes (-1 blank) and labels: a comparison with a literal compares
    codes (the text values are made only if asked for)."""

    __slots__ = ("codes", "labels")

    def __init__(self, codes: np.ndarray, categories: list[str]):
        known = codes >= 0
        super().__init__(None, known)
        self.codes, self.labels = codes, categories
        self._derive = lambda: (np.asarray([*categories, ""], dtype=str)[codes], known)  # (no cycle via self)

    def hit(self, literals: Any) -> np.ndarray:
        """Where the value is one of `literals` (meaningful where known)."""
        out = np.zeros(len(self.codes), dtype=bool)
        for i, label in enumerate(self.labels):
            if label in literals:
                out |= self.codes == i
        return out


K_FALSE, K_UNKNOWN, K_TRUE = np.int8(0), np.int8(1), np.int8(2)  # Kleene's order: and = min, or = max


def _at_length(form: Any, n: int) -> bool:
    """Whether a form of a `Vec` is absent or held at length `n` (the test runs for every value read: an
    array's shape is looked at directly, anything else goes through `np.shape`)."""
    if form is None:
        return True
    if type(form) is np.ndarray:
        return form.shape == (n,)
    return np.shape(form) == (n,)


def _verdicts(values: Any, known: Any) -> np.ndarray:
    """Values and known mask as Kleene verdicts: 2·(known and true) + (not known), in int8 arithmetic on the
    masks' bytes (a nested `np.where` takes some 40 times as long)."""
    true = np.asarray(np.asarray(values, dtype=bool) & np.asarray(known, dtype=bool)).view(np.int8)
    return true + true + np.asarray(~np.asarray(known, dtype=bool)).view(np.int8)


def _both_known(a: Vec, b: Vec) -> Any:
    """Where both are known (without a pass over the rows where one side is a known scalar)."""
    ka, kb = a.known, b.known
    if np.ndim(kb) == 0 and kb:
        return ka
    if np.ndim(ka) == 0 and ka:
        return kb
    return np.asarray(ka, dtype=bool) & np.asarray(kb, dtype=bool)


def kleene_state(kleene: Any) -> np.ndarray:
    """Kleene verdicts (0 false, 1 unknown, 2 true) as the states the outcome tables and the trace use (0 false,
    1 true, 2 unknown: `outcomes.KLEENE_STATES`), by byte arithmetic: (2v & 3) | (v > 1) (numpy's shifts and
    look-ups take several times as long)."""
    v = np.asarray(kleene).view(np.uint8)
    state = v + v
    state &= 3
    state |= np.asarray(v > 1).view(np.uint8)
    return state.view(np.int8)


class DecisionPlan:
    """A decision's outcome table (`povertyrules.engines.outcomes`) as arrays indexed by a row's combination
    of Kleene verdicts (Σ verdict·3^i over its outcome rules), filled in for the combinations that occur.

    Every row needs only its outcome and its possible outcomes; which rules a row cites, and why the rule set
    fails on a row, are looked up from the same combination when asked for (`Evaluation.cited`,
    `Evaluation.failure`)."""

    def __init__(self, decision: Decision, table: OutcomeTable):
        self.decision, self.table = decision, table
        self.values = [*decision.values, REVIEW]
        size = table.size
        self.code = np.zeros(size, dtype=np.int32)  # the table's own code of the combination
        self.outcome = np.full(size, -1, dtype=np.int8)  # index into `values`; -1: not resolved yet
        self.possible = np.zeros(size, dtype=np.int32)  # bit mask of the possible outcomes
        self.error = np.zeros(size, dtype=bool)
        self.cited = np.zeros((len(table.rules), size), dtype=bool)
        self._lock = threading.Lock()

    def outcomes(self, combinations: np.ndarray) -> np.ndarray:
        """Each row's outcome (an index into `values`), resolving the combinations not met before."""
        out = np.take(self.outcome, combinations)
        if (out < 0).any():
            with self._lock:
                for combination in np.unique(combinations[out < 0]):
                    if self.outcome[combination] < 0:
                        self._resolve(int(combination))
            out = np.take(self.outcome, combinations)
        return out

    def present(self, combinations: np.ndarray) -> np.ndarray:
        """The combinations that occur in `combinations` (each resolved by `outcomes` already)."""
        return np.flatnonzero(np.bincount(combinations, minlength=self.table.size))

    def _resolve(self, combination: int) -> None:
        table, kleene, states = self.table, combination, []
        for _ in table.rules:
            kleene, verdict = divmod(kleene, 3)
            states.append(KLEENE_STATES[verdict])
        code = table.code(states)
        res = table.resolve(code)
        bit = {v: 1 << i for i, v in enumerate(self.decision.values)}
        self.code[combination] = code
        self.possible[combination] = sum(bit[v] for v in res.possible)
        self.error[combination] = res.error
        for j, rule in enumerate(table.rules):
            self.cited[j, combination] = rule.id in res.cited
        self.outcome[combination] = self.values.index(res.decided) if res.decided is not None else \
            len(self.decision.values)  # last: the combination counts as resolved from here on

    def failure(self, combination: int) -> str:
        """"" or why the rule set fails on a row with this combination (Chinese / English)."""
        res = self.table.resolve(int(self.code[combination]))
        name = self.decision.name
        if res.conflict:
            return (f"决定 {name} 的规则 {list(res.conflict)} 同时适用（须互斥或设为例外） / rules "
                    f"{list(res.conflict)} of decision '{name}' apply together; make one an exception of the "
                    "other or their conditions exclusive")
        if res.nothing_applies:
            return (f"决定 {name} 没有任何判定规则适用（须覆盖所有情形） / no outcome rule of decision "
                    f"'{name}' applies; the top-level rules must cover every case")
        return ""


_PLANS: dict[tuple[str, str], DecisionPlan] = {}


def decision_plan(book: RuleBook, name: str) -> DecisionPlan:
    """The decision's plan (cached by rule-set version, as its outcome table is)."""
    key = (book.version, name)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 256:
            _PLANS.clear()
        plan = _PLANS[key] = DecisionPlan(book.decisions[name], outcome_table(book, name))
    return plan


class _CitedMasks(Mapping[str, np.ndarray]):
    """Outcome rule id -> the rows on which it is on the decisive path (looked up when asked for)."""

    def __init__(self, result: Evaluation):
        self.result = result

    def __getitem__(self, rule_id: str) -> np.ndarray:
        rule = self.result.book.rules.get(rule_id)
        if rule is None or rule.decision not in self.result.combinations:
            raise KeyError(rule_id)
        plan = self.result.plans[rule.decision]
        return plan.cited[plan.table.index[rule_id]][self.result.combinations[rule.decision]]

    def __iter__(self) -> Iterator[str]:
        return (r.id for name in self.result.combinations for r in self.result.plans[name].table.rules)

    def __len__(self) -> int:
        return sum(len(self.result.plans[name].table.rules) for name in self.result.combinations)


class _TakenRows(Mapping[str, Vec]):
    """Name -> the rows `rows` of the full-length `source[name]`, taken when first asked for and kept."""

    __slots__ = ("n", "rows", "source", "taken")

    def __init__(self, source: Mapping[str, Vec], n: int, rows: slice | np.ndarray):
        self.source, self.n, self.rows, self.taken = source, n, rows, {}

    def __getitem__(self, name: str) -> Vec:
        found = self.taken.get(name)
        if found is None:
            found = self.taken[name] = self.source[name].full(self.n).take(self.rows)
        return found

    def __contains__(self, name: object) -> bool:
        return name in self.source

    def __iter__(self) -> Iterator[str]:
        return iter(self.source)

    def __len__(self) -> int:
        return len(self.source)


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
    possible: dict[str, np.ndarray] = field(default_factory=dict)  # decision -> bit mask of possible outcomes
    #: decision -> each row's combination of its outcome rules' verdicts (an index into its plan's arrays)
    combinations: dict[str, np.ndarray] = field(default_factory=dict)
    plans: dict[str, DecisionPlan] = field(default_factory=dict)

    @property
    def cited(self) -> Mapping[str, np.ndarray]:
        """Outcome rule id -> the rows on which it is on its decision's decisive path."""
        return _CitedMasks(self)

    def outcome(self, decision: str) -> np.ndarray:
        """The decision's outcome per row, as text (``review`` where undecidable)."""
        return np.asarray(self.outcome_values[decision], dtype=object)[self.codes[decision]]

    def failed(self) -> np.ndarray:
        """Rows on which some decision's rules apply together or none applies (a fault of the rule set)."""
        out = np.zeros(self.n, dtype=bool)
        for name, combination in self.combinations.items():
            plan = self.plans[name]
            if plan.error.any():  # some combination seen so far is a fault: which rows have one
                out |= plan.error[combination]
        return out

    def failure(self, row: int) -> str:
        """Why the rule set fails on `row` (Chinese / English), naming the decision and its rules."""
        found = (self.plans[name].failure(int(c[row])) for name, c in self.combinations.items())
        return "；".join(f for f in found if f)

    def verdict(self, name: str) -> np.ndarray:
        """A criterion's or outcome rule's verdict per row as a code: 0 false, 1 true, 2 unknown."""
        return kleene_state(self.value(name).kleene)

    def value(self, name: str) -> Vec:
        return (self.env.get(name) or self.conditions[name]).full(self.n)

    def row(self, i: int) -> Evaluation:
        """Row `i` alone, as a one-row evaluation (for explaining one household of a batch)."""
        return self.take(slice(i, i + 1))

    def take(self, rows: slice | np.ndarray) -> Evaluation:
        """The evaluation of `rows` only (a slice or row positions), in that order. Its values are taken from
        this one when first read (`_TakenRows`): explaining one household of a batch reads a few of them."""
        n = len(range(self.n)[rows]) if isinstance(rows, slice) else len(rows)
        return Evaluation(self.book, self.entity, n, _TakenRows(self.env, self.n, rows),
                          _TakenRows(self.conditions, self.n, rows),
                          {k: v[rows] for k, v in self.codes.items()}, self.outcome_values,
                          {k: v[rows] for k, v in self.possible.items()},
                          {k: v[rows] for k, v in self.combinations.items()}, self.plans)


def column_vec(series: pd.Series, kind: str) -> Vec:
    """An input column as a `Vec` (kind: 'number', 'bool' or 'text'; choice and text columns are `Coded`)."""
    array = series.array
    if isinstance(array, pd.Categorical):  # choice columns: the few categories by code
        return Coded(np.asarray(array.codes), [str(c) for c in array.categories])
    if kind == "bool" and isinstance(array, pd.arrays.BooleanArray):
        return Vec(np.asarray(array._data), ~np.asarray(array._mask))
    if kind == "number":
        if series.dtype == np.float64:  # blanks are NaN already: no copy
            values = series.to_numpy()
            return Vec(values, ~np.isnan(values))
        if not pd.api.types.is_float_dtype(series.dtype):
            series = pd.to_numeric(series, errors="coerce")
        values = series.to_numpy(dtype=float, na_value=np.nan)
        return Vec(values, ~np.isnan(values))
    if kind == "bool":
        known = series.notna().to_numpy(dtype=bool)
        return Vec(series.fillna(False).to_numpy(dtype=bool), known)
    codes, uniques = pd.factorize(series)  # text: coded by its distinct values (blank: -1), as choices are
    return Coded(np.asarray(codes), [str(u) for u in uniques])


def evaluate(book: RuleBook, frame: pd.DataFrame, entity: Entity = "household",
             forced: dict[str, tuple[Vec, np.ndarray]] | None = None) -> Evaluation:
    """Evaluate every definition, criterion and decision of `entity` on `frame`.

    `frame` holds typed input columns (see `povertyrules.model.records`); for households a ``year``
    column chooses the parameter values in force for each row. Missing optional columns are unknown.
    `forced` maps a column, definition or criterion to (values, rows): on those rows the values replace what
    the data or the rules give (for counterfactuals); everything downstream follows.
    """
    used = _used_columns(book, entity)
    columns = {name: column_vec(frame[name], column.type)
               for name, column in book.columns(entity).items() if name in frame and name in used}
    years = frame["year"].to_numpy() if "year" in frame else None
    return evaluate_columns(book, columns, len(frame), entity, years, forced)


_USED: dict[tuple[int, str, str], set[str]] = {}


def _used_columns(book: RuleBook, entity: Entity) -> set[str]:
    """`RuleBook.used_columns`, worked out once per rule set (it walks every rule and message)."""
    key = (id(book), book.version, entity)
    if key not in _USED:
        if len(_USED) > 64:
            _USED.clear()
        _USED[key] = book.used_columns(entity)
    return _USED[key]


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
    if computed._kleene is not None:  # a condition held as verdicts
        return Vec.of_verdicts(np.where(rows, values.kleene, computed.kleene))
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
            case ex.Logic(op=op, operands=ops):  # Kleene: and = min, or = max over verdicts
                combine = np.minimum if op == "and" else np.maximum
                out = self.eval(ops[0]).kleene
                for o in ops[1:]:
                    out = combine(out, self.eval(o).kleene)
                return Vec.of_verdicts(out)
            case ex.Not(operand=o):
                return Vec.of_verdicts(K_TRUE - self.eval(o).kleene)
            case ex.In(operand=ex.Name(name=name), values=values, negate=negate) if name in self.result.possible:
                return self.decision_test(name, set(values), negate)
            case ex.In(operand=o, values=values, negate=negate):
                v = self.eval(o)
                if isinstance(v, Coded):
                    hit = v.hit(set(values))
                else:
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
        if name not in self.book.parameters:
            raise KeyError(name)
        if self.years is None:
            raise RuleError(f"parameter '{name}' needs a year, but the {self.entity} entity has none")
        key = (name, offset)
        if key not in self._params:
            if self._unique_years is None:
                years = self.years  # mostly one year a chunk: checked in one pass before hashing them
                self._unique_years = years[:1] if len(years) and (years == years[0]).all() else pd.unique(years)
            unique = self._unique_years
            lookup = {int(y): parameters_for(self.book, int(y) + offset)[name] for y in unique}
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
        known = _both_known(a, b)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if op == "+":
                return Vec(a.values + b.values, known)
            if op == "-":
                return Vec(a.values - b.values, known)
            if op == "*":
                return Vec(a.values * b.values, known)
            return Vec(np.divide(a.values, b.values), known & (b.values != 0))  # unknown where b is 0

    @staticmethod
    def compare(op: str, a: Vec, b: Vec) -> Vec:
        known = _both_known(a, b)
        if op in ("==", "!=") and (isinstance(a, Coded) or isinstance(b, Coded)):
            coded, other = (a, b) if isinstance(a, Coded) else (b, a)
            if isinstance(other.values, str):  # a choice column against a literal: compare codes
                hit = coded.hit({other.values})
                return Vec(hit if op == "==" else ~hit, known)
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
        """Resolve the decision's outcome rules for every row (see `povertyrules.engines.outcomes`): each
        row's combination of verdicts, looked up in the decision's plan for its outcome and possible ones."""
        n, result = self.result.n, self.result
        plan = decision_plan(self.book, decision.name)
        combination = np.zeros(n, dtype=np.uint16)  # Σ verdict·3^i < 3^10 (`outcomes.MAX_RULES`)
        for i, r in enumerate(plan.table.rules):
            c = self.eval(r.expr).full(n)
            result.conditions[r.id] = c
            combination += np.multiply(np.asarray(c.kleene).view(np.uint8), 3 ** i, dtype=np.uint16)
        out = plan.outcomes(combination)
        result.combinations[decision.name], result.plans[decision.name] = combination, plan
        result.codes[decision.name] = out
        result.possible[decision.name] = np.take(plan.possible, combination)
        result.outcome_values[decision.name] = plan.values
        review = len(decision.values)
        result.env[decision.name] = Vec.deferred(
            lambda: (np.asarray(plan.values, dtype=str)[out], out != review))

    def decision_test(self, name: str, accepted: set[str], negate: bool) -> Vec:
        """``decision in accepted`` (or not) over the decision's possible outcomes: unknown only where some
        possible outcome is accepted and another is not."""
        values = self.book.decisions[name].values
        wanted = sum(1 << i for i, v in enumerate(values) if v in accepted)
        possible = self.result.possible[name]
        inside, outside = (possible & ~wanted) == 0, (possible & wanted) == 0
        if negate:
            inside, outside = outside, inside
        # true inside, false outside, unknown where outcomes both inside and outside are possible (by byte
        # arithmetic: 1 + inside - outside, and true where nothing is possible, a fault of the rule set)
        verdicts = inside.view(np.int8) + K_UNKNOWN
        verdicts -= (outside & ~inside).view(np.int8)
        return Vec.of_verdicts(verdicts)
