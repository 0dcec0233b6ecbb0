"""One compiled plan per decision: engine-neutral guards over the verdicts of its outcome rules.

A decision's outcome rules form a tree (Catala's style): top-level rules, each refined by the exceptions
that name it as ``exception_of``. Every engine evaluates the rules' conditions in three-valued logic its own
way (numpy columns, one Python row, durable_rules facts); the plan turns those verdicts into the outcome,
the same way for all of them. Its guards are formulas over two kinds of atoms — *rule r is true* and
*rule r is false* (known and so) — joined by ``and``/``or``, so a guard can be evaluated on booleans, on numpy
masks, or compiled to a durable_rules condition.

The outcome is the one every completion of the blanks agrees on: a blank matters only where it could change
the outcome. With rule verdicts true/false/unknown, an outcome ``w`` is *possible* at a level (siblings
``S`` refining a base whose outcome is ``fallback``) when

- a sibling is true and ``w`` is possible among its exceptions (siblings never apply together, so the
  others are then false), or
- no sibling is true and ``w`` is the fallback (every sibling may be false), or ``w`` is possible below an
  unknown sibling.

The guard ``decided[v]`` holds where every other outcome — and "no rule applies" — is impossible. Two more
guards report rule-set errors per row: ``conflict`` (two sibling rules true together) and ``uncovered``
(whatever the blanks, no top-level rule applies). ``path[r]`` holds where ``r`` is the decisive rule: it
holds, its base (and the base's bases) hold, and its exceptions fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from povertyrules.lang.rulebook import REVIEW, RuleBook

#: the pseudo-outcome "no rule applies" (an error of the rule set, reported per row)
NONE_APPLIES = "\0none"


@dataclass(frozen=True)
class Atom:
    """Rule `rule`'s condition is known and equal to `verdict`; verdict None: it is *not known false* (true or
    unknown), used only for citing (outcome guards stay positive, so durable_rules can evaluate them)."""

    rule: str
    verdict: bool | None


@dataclass(frozen=True)
class All:
    parts: tuple[Guard, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Guard, ...]


Guard = Atom | All | AnyOf
TRUE: Guard = All(())
FALSE: Guard = AnyOf(())


def all_of(*parts: Guard) -> Guard:
    """A conjunction, folded: a false part makes it false, true parts drop out."""
    flat: list[Guard] = []
    for p in parts:
        if p == FALSE:
            return FALSE
        if p != TRUE:
            flat.extend(p.parts if isinstance(p, All) else (p,))
    return flat[0] if len(flat) == 1 else All(tuple(dict.fromkeys(flat)))


def any_of(*parts: Guard) -> Guard:
    """A disjunction, folded: a true part makes it true, false parts drop out."""
    flat: list[Guard] = []
    for p in parts:
        if p == TRUE:
            return TRUE
        if p != FALSE:
            flat.extend(p.parts if isinstance(p, AnyOf) else (p,))
    return flat[0] if len(flat) == 1 else AnyOf(tuple(dict.fromkeys(flat)))


def evaluate(guard: Guard, atom: Callable[[str, bool], Any]) -> Any:
    """Evaluate a guard with `atom(rule, verdict)` giving a bool or a numpy mask (``&``/``|`` combine)."""
    if isinstance(guard, Atom):
        return atom(guard.rule, guard.verdict)
    if isinstance(guard, All):
        out: Any = True
        for p in guard.parts:
            out = out & evaluate(p, atom)
        return out
    out = False
    for p in guard.parts:
        out = out | evaluate(p, atom)
    return out


@dataclass(frozen=True)
class DecisionPlan:
    """A decision compiled to guards (see the module docstring)."""

    name: str
    rules: tuple[str, ...]  # outcome rule ids in file order
    values: tuple[str, ...]  # the decision's outcome values, then REVIEW (codes index this)
    outcome: dict[str, str]  # rule id -> its outcome
    base: dict[str, str | None]  # rule id -> the rule it is an exception of
    decided: dict[str, Guard]  # outcome value -> the guard that the decision takes it
    conflict: Guard
    uncovered: Guard
    path: dict[str, Guard]  # rule id -> it holds, its bases hold, its exceptions fail
    active: dict[str, Guard]  # rule id -> none of its bases is known false (it was considered)
    exceptions: dict[str | None, tuple[str, ...]] = field(default_factory=dict)

    @property
    def review(self) -> int:
        return len(self.values) - 1

    def code(self, value: str) -> int:
        return self.values.index(value)

    def resolve(self, atom: Callable[[str, bool | None], Any], n: int | None = None) -> tuple[Any, Any, Any]:
        """(outcome codes, conflict, uncovered) from rule verdicts: numpy arrays of `n` rows, or scalars
        when `n` is None. Codes index `values`; ``review`` where the blanks could change the outcome."""
        import numpy as np

        codes = np.full(n if n is not None else 1, self.review, dtype=np.int8)
        for value, guard in self.decided.items():
            hit = np.broadcast_to(np.asarray(evaluate(guard, atom), dtype=bool), codes.shape)
            codes[hit] = self.code(value)
        conflict = evaluate(self.conflict, atom)
        uncovered = evaluate(self.uncovered, atom)
        if n is None:
            return int(codes[0]), bool(conflict), bool(uncovered)
        return (codes, np.broadcast_to(np.asarray(conflict, bool), codes.shape),
                np.broadcast_to(np.asarray(uncovered, bool), codes.shape))


def compile_decision(book: RuleBook, name: str) -> DecisionPlan:
    decision = book.decisions[name]
    rules = [book.rules[r] for r in decision.outcomes]
    children: dict[str | None, tuple[str, ...]] = {}
    for r in rules:
        children[r.exception_of] = (*children.get(r.exception_of, ()), r.id)
    outcome = {r.id: r.outcome or "" for r in rules}
    base = {r.id: r.exception_of for r in rules}
    values = tuple(dict.fromkeys([*decision.values, *outcome.values()]))
    T = {r.id: Atom(r.id, True) for r in rules}
    F = {r.id: Atom(r.id, False) for r in rules}

    def impossible(siblings: tuple[str, ...], fallback: str, w: str) -> Guard:
        """The guard that outcome `w` cannot result at this level (see the module docstring)."""
        below = {s: impossible(children.get(s, ()), outcome[s], w) for s in siblings}
        one_true = any_of(*(all_of(T[s], below[s]) for s in siblings))
        none_true = TRUE if w != fallback else FALSE
        none_true = all_of(none_true, *(any_of(F[s], below[s]) for s in siblings))
        return any_of(one_true, none_true)

    top = children.get(None, ())
    everything = (*values, NONE_APPLIES)
    impossible_of = {w: impossible(top, NONE_APPLIES, w) for w in everything}
    decided = {v: all_of(*(impossible_of[w] for w in everything if w != v)) for v in values}

    def ancestors(rid: str) -> list[str]:
        out, cursor = [], base[rid]
        while cursor is not None:
            out.append(cursor)
            cursor = base[cursor]
        return out

    conflicts = []
    for parent, siblings in children.items():
        active = TRUE if parent is None else all_of(T[parent], *(T[a] for a in ancestors(parent)))
        conflicts += [all_of(active, T[a], T[b]) for i, a in enumerate(siblings) for b in siblings[i + 1:]]
    path = {r: all_of(T[r], *(T[a] for a in ancestors(r)), *(F[e] for e in children.get(r, ())))
            for r in outcome}
    active_of = {r: all_of(*(Atom(a, None) for a in ancestors(r))) for r in outcome}
    return DecisionPlan(name=name, rules=tuple(outcome), values=(*values, REVIEW), outcome=outcome, base=base,
                        decided=decided, conflict=any_of(*conflicts), uncovered=decided_none(impossible_of, values),
                        path=path, active=active_of, exceptions=children)


def decided_none(impossible_of: dict[str, Guard], values: tuple[str, ...]) -> Guard:
    """Whatever the blanks, no top-level rule applies: every real outcome is impossible."""
    return all_of(*(impossible_of[w] for w in values))


_PLANS: dict[tuple[int, str], dict[str, DecisionPlan]] = {}


def plans(book: RuleBook) -> dict[str, DecisionPlan]:
    """Every decision of the rule set compiled (cached per rule set)."""
    key = (id(book), book.version)
    if key not in _PLANS:
        if len(_PLANS) > 64:
            _PLANS.clear()
        _PLANS[key] = {name: compile_decision(book, name) for name in book.decisions}
    return _PLANS[key]


def disjuncts(guard: Guard) -> list[frozenset[Atom]]:
    """The guard as an equivalent disjunction of conjunctions of atoms (for engines without nesting, such as
    durable_rules): contradictory conjunctions (a rule both true and false) and absorbed ones are dropped."""
    def contradictory(term: frozenset[Atom]) -> bool:
        return any(Atom(a.rule, not a.verdict) in term for a in term if a.verdict is not None)

    def minimal(terms: list[frozenset[Atom]]) -> list[frozenset[Atom]]:
        terms = sorted(set(t for t in terms if not contradictory(t)), key=len)
        kept: list[frozenset[Atom]] = []
        for t in terms:
            if not any(k <= t for k in kept):
                kept.append(t)
        return kept

    if isinstance(guard, Atom):
        return [frozenset([guard])]
    if isinstance(guard, AnyOf):
        return minimal([t for p in guard.parts for t in disjuncts(p)])
    terms = [frozenset()]
    for p in guard.parts:
        terms = minimal([a | b for a in terms for b in disjuncts(p)])
    return terms
