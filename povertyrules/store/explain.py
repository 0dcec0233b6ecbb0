"""Explanations of stored decisions: the reasons given then, the clause texts, and what would change the outcome.

Everything comes from the run as it was stored — its reasons, its clause texts and a snapshot of its rule files —
so an explanation months later gives the answer that was given then, whatever the rule files say today.
Counterfactuals re-run the stored rule set on the stored input row with one (or two) conditions flipped, all
variants in one batch, and keep the smallest changes that move the outcome.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from povertyrules.engines.vectorized import Evaluation, Vec, evaluate, evaluate_expression
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import RuleBook, load_rulebook
from povertyrules.store.models import Decision, Reason, Run

DECISIONS = ("identification", "exit", "monitoring")
NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_BOOKS: dict[str, RuleBook] = {}


@dataclass
class Change:
    """Conditions that, set as given, would move a decision to `outcome`."""

    decision: str
    outcome: str
    conditions: list[dict[str, Any]]  # {name, clause, becomes, hint}


@dataclass
class Explanation:
    run: Run
    decision: Decision
    reasons: list[Reason]
    clauses: dict[str, str]
    changes: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "household_id": d.household_id, "run_id": self.run.id, "run_time": self.run.created_at.isoformat(),
            "input_file": self.run.input_file, "rules_version": self.run.rules_version,
            "decision": {k: getattr(d, k) for k in ("year", "poverty_line", "monitoring_line", "per_capita_income",
                                                    "four_look_score", "identification", "exit", "monitoring",
                                                    "monitoring_triggers", "missing_columns")},
            "reasons": [{"decision": r.decision, "rule_id": r.rule_id, "kind": r.kind, "clause": r.clause,
                         "verdict": r.verdict, "observed": json.loads(r.observed),
                         "thresholds": json.loads(r.thresholds), "message": r.message} for r in self.reasons],
            "clauses": self.clauses,
            "what_would_change": [c.__dict__ for c in self.changes],
        }


def snapshot_rulebook(run: Run) -> RuleBook:
    """The rule set a run used, rebuilt from its snapshot (cached per rules_version)."""
    if run.rules_version in _BOOKS:
        return _BOOKS[run.rules_version]
    snapshot = json.loads(run.rules_snapshot)
    folder = Path(tempfile.mkdtemp(prefix=f"povertyrules-{run.rules_version}-"))
    for relative, text in snapshot["files"].items():
        path = folder / "rules" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    overrides = []
    for name, text in snapshot["overrides"].items():
        path = folder / f"override-{name}.yaml"
        path.write_text(text, encoding="utf-8")
        overrides.append(path)
    book = load_rulebook(folder / "rules", overrides, snapshot["override_values"] or None)
    _BOOKS[run.rules_version] = book
    return book


def explain_stored(run: Run, decision: Decision, reasons: list[Reason]) -> Explanation:
    cited = {c.strip() for r in reasons for c in r.clause.split(",")}
    clause_texts = {c: t for c, t in json.loads(run.clauses).items() if c in cited and t}
    explanation = Explanation(run, decision, reasons, clause_texts)
    explanation.changes = counterfactuals(snapshot_rulebook(run), decision, reasons)
    return explanation


def input_frame(decision: Decision, book: RuleBook, copies: int = 1) -> pd.DataFrame:
    """The stored input row, typed as the engine expects, repeated `copies` times."""
    row = json.loads(decision.inputs)
    frame = pd.DataFrame([row] * copies)
    for name, column in book.columns("household").items():
        if name in frame and column.type == "bool":
            frame[name] = frame[name].astype("boolean")
    frame["year"] = int(decision.year)
    return frame


def counterfactuals(book: RuleBook, decision: Decision, reasons: list[Reason]) -> list[Change]:
    """For each decision, the single (or else paired) flipped conditions that change its outcome."""
    base = evaluate(book, input_frame(decision, book))
    changes: list[Change] = []
    for name in DECISIONS:
        candidates = _candidates(book, base, [r for r in reasons if r.decision == name])
        current = base.outcome(name)[0]
        found = _search(book, decision, base, name, current, candidates, size=1)
        if not found:
            found = _search(book, decision, base, name, current, candidates, size=2)
        changes.extend(found)
    return changes


def _candidates(book: RuleBook, base: Evaluation, reasons: list[Reason]) -> list[tuple[str, bool]]:
    """(name, value to force): cited criteria flipped, and yes/no inputs that cited outcome rules test."""
    names: list[str] = []
    for r in reasons:
        if r.kind == "criterion":
            names += _leaf_criteria(book, r.rule_id)
        else:
            names += [n for n in ex.names(book.rules[r.rule_id].expr)
                      if book.kind_of("household", n) == "column" and book.columns("household")[n].type == "bool"]
    out = []
    for name in dict.fromkeys(names):
        v = base.value(name)
        if v.known[0]:
            out.append((name, not bool(v.values[0])))
        else:
            out += [(name, True), (name, False)]
    return out


def _leaf_criteria(book: RuleBook, name: str) -> list[str]:
    """A criterion itself if it names no other criterion, else the leaf criteria below it.

    Only leaves are flipped, so composite criteria (any_exclusion, any_risk) stay consistent with them.
    """
    subs = [n for n in ex.names(book.rules[name].expr) if book.kind_of("household", n) == "criterion"]
    return [name] if not subs else [leaf for sub in subs for leaf in _leaf_criteria(book, sub)]


def _search(book: RuleBook, decision: Decision, base: Evaluation, name: str, current: str,
            candidates: list[tuple[str, bool]], size: int) -> list[Change]:
    combos = [c for c in itertools.combinations(candidates, size) if len({n for n, _ in c}) == size]
    if not combos:
        return []
    forced: dict[str, Vec] = {}
    for target in {n for combo in combos for n, _ in combo}:
        v = base.value(target)
        values = np.repeat(np.asarray(v.values, dtype=bool), len(combos))
        known = np.repeat(np.asarray(v.known, dtype=bool), len(combos))
        for i, combo in enumerate(combos):
            for n, value in combo:
                if n == target:
                    values[i], known[i] = value, True
        forced[target] = Vec(values, known)
    variants = evaluate(book, input_frame(decision, book, len(combos)), forced=forced).outcome(name)
    changes = []
    for combo, outcome in zip(combos, variants, strict=True):
        if outcome != current and outcome != "review":
            changes.append(Change(name, str(outcome), [_condition(book, base, n, value) for n, value in combo]))
    return changes


def _condition(book: RuleBook, base: Evaluation, name: str, value: bool) -> dict[str, Any]:
    rule = book.rules.get(name)
    if rule:
        clause = rule.citation
    else:  # an input column: cite the outcome rules that test it
        clause = ",".join(dict.fromkeys(c for r in book.rules.values() if r.kind == "outcome"
                                        and name in ex.names(r.expr) for c in r.clauses))
    return {"name": name, "clause": clause, "becomes": value, "hint": hint(book, base, name, value)}


def hint(book: RuleBook, base: Evaluation, name: str, value: bool) -> str:
    """What setting `name` to `value` means in observed terms, e.g. ``per_capita_income < 4000 (now 11897)``."""
    rule = book.rules.get(name)
    if rule is None:  # an input column
        return f"{name} = {'是/yes' if value else '否/no'}"
    node = rule.expr
    if isinstance(node, ex.Compare):
        op = node.op if value else NEGATE[node.op]
        right = evaluate_expression(base, node.right)
        left = evaluate_expression(base, node.left)
        now = _number(left)
        return f"{ex.render(node.left)} {op} {_number(right)} (now {now})"
    return _bool_hint(book, node, value) or f"{rule.description.en} — {'true' if value else 'false'}"


def _bool_hint(book: RuleBook, node: ex.Node, value: bool) -> str | None:
    """For conditions over yes/no columns: which answers make it `value` (None for anything else)."""
    match node:
        case ex.Name(name=name) if book.kind_of("household", name) == "column":
            return f"{name} = {'是/yes' if value else '否/no'}"
        case ex.Not(operand=operand):
            return _bool_hint(book, operand, not value)
        case ex.Logic(op=op, operands=operands):
            parts = [_bool_hint(book, o, value) for o in operands]
            if None in parts:
                return None
            joiner = " and " if (op == "and") == value else " or "
            return joiner.join(p for p in parts if p)
    return None


def _number(v: Vec) -> str:
    if not v.known[0]:
        return "unknown"
    value = v.values[0]
    return f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float | np.floating) else str(value)
