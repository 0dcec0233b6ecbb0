"""Explanations of stored decisions: the reasons given then, the clause texts, and what would change the outcome.

Everything comes from the run as it was stored — each decision's trace and input row, its clause texts and a
snapshot of its rule files — so an explanation months later gives the answer that was given then, whatever the
rule files say today. Reasons are re-derived from the snapshot (and checked against the stored trace).
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

from povertyrules.engines.vectorized import Evaluation, Vec, evaluate_columns, evaluate_expression
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import RuleBook, load_rulebook
from povertyrules.store.models import Decision, Reason, Run

DECISIONS = ("identification", "exit", "monitoring")
REPORTED_EXTRA = ("risk_removal",)  # decisions without a column in the store, explained where the rules define them
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


def typed_inputs(book: RuleBook, decisions: list[Decision]) -> pd.DataFrame:
    """Stored decisions' input rows as a typed frame the batch engine reads (bool, number and text columns)."""
    frame = pd.DataFrame([json.loads(d.inputs) for d in decisions])
    for name, column in book.columns("household").items():
        if name not in frame:
            continue
        if column.type == "bool":
            frame[name] = frame[name].astype("boolean")
        elif column.type == "number":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame["household_id"] = [d.household_id for d in decisions]
    frame["year"] = np.asarray([int(d.year) for d in decisions], dtype="int64")
    frame["row"] = np.asarray([int(d.row) for d in decisions], dtype="int64")
    return frame


def input_columns(decision: Decision, book: RuleBook) -> dict[str, Vec]:
    """The stored input row as engine columns (scalars; they broadcast to any number of variants)."""
    row = json.loads(decision.inputs)
    columns = {}
    for name, column in book.columns("household").items():
        value = row.get(name)
        if value is None:
            continue
        columns[name] = Vec(bool(value) if column.type == "bool" else
                            float(value) if column.type == "number" else str(value), True)
    return columns


def _evaluate(book: RuleBook, decision: Decision, n: int, forced=None) -> Evaluation:
    return evaluate_columns(book, input_columns(decision, book), n, years=np.full(n, int(decision.year)),
                            forced=forced)


def counterfactuals(book: RuleBook, decision: Decision, reasons: list[Reason]) -> list[Change]:
    """For each decision, the single (or else paired) flipped conditions that change its outcome.

    All single flips of all decisions run as one batch with the unchanged row first; pairs, where no single
    flip moves a decision, as a second batch.
    """
    base = _evaluate(book, decision, 1)
    names = [*DECISIONS, *(d for d in REPORTED_EXTRA if d in book.decisions)]
    candidates = {name: _candidates(book, base, [r for r in reasons if r.decision == name]) for name in names}
    singles = {name: [(c,) for c in candidates[name]] for name in names}
    found = _search(book, decision, base, singles)
    pairs = {name: [c for c in itertools.combinations(candidates[name], 2) if c[0][0] != c[1][0]]
             for name in names if not any(change.decision == name for change in found)}
    return found + (_search(book, decision, base, pairs) if any(pairs.values()) else [])


def _candidates(book: RuleBook, base: Evaluation, reasons: list[Reason]) -> list[tuple[str, bool]]:
    """(name, value to force): cited criteria flipped, and yes/no inputs that cited outcome rules test."""
    names: list[str] = []
    for r in reasons:
        if r.kind == "criterion":
            names += _leaf_criteria(book, r.rule_id)
        else:  # yes/no inputs the outcome rule tests, and its criteria (a criterion cited first by another
            # decision is recorded under that one)
            names += [n for n in ex.names(book.rules[r.rule_id].expr)
                      if book.kind_of("household", n) == "column" and book.columns("household")[n].type == "bool"]
            names += [leaf for n in ex.names(book.rules[r.rule_id].expr)
                      if book.kind_of("household", n) == "criterion" for leaf in _leaf_criteria(book, n)]
    out = []
    for name in (n for n in dict.fromkeys(names) if _reads_input(book, n)):
        v = base.value(name)
        if v.known[0]:
            out.append((name, not bool(v.values[0])))
        else:
            out += [(name, True), (name, False)]
    return out


def _reads_input(book: RuleBook, name: str) -> bool:
    """Whether a name depends on the household's data (a criterion over parameters alone, such as which
    regime is in force for the year, is no condition a household could change)."""
    kind = book.kind_of("household", name)
    if kind == "column":
        return True
    if kind in ("definition", "criterion"):
        return any(_reads_input(book, n) for n in ex.names(book.rules[name].expr))
    return False


def _leaf_criteria(book: RuleBook, name: str) -> list[str]:
    """A criterion itself if it names no other criterion, else the leaf criteria below it.

    Only leaves are flipped, so composite criteria (any_exclusion, any_risk) stay consistent with them.
    """
    subs = [n for n in ex.names(book.rules[name].expr) if book.kind_of("household", n) == "criterion"]
    return [name] if not subs else [leaf for sub in subs for leaf in _leaf_criteria(book, sub)]


def _search(book: RuleBook, decision: Decision, base: Evaluation,
            combos: dict[str, list[tuple[tuple[str, bool], ...]]]) -> list[Change]:
    """Evaluate every combination of forced values in one batch; keep those that move their decision."""
    flat = [(name, combo) for name, group in combos.items() for combo in group]
    if not flat:
        return []
    forced: dict[str, tuple[Vec, np.ndarray]] = {}
    for target in {n for _, combo in flat for n, _ in combo}:
        values, rows = np.zeros(len(flat), dtype=bool), np.zeros(len(flat), dtype=bool)
        for i, (_, combo) in enumerate(flat):
            for n, value in combo:
                if n == target:
                    values[i], rows[i] = value, True
        forced[target] = (Vec(values, True), rows)
    variants = _evaluate(book, decision, len(flat), forced)
    outcomes = {name: variants.outcome(name) for name in combos}
    changes = []
    for i, (name, combo) in enumerate(flat):
        outcome, current = outcomes[name][i], base.outcome(name)[0]
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
    return {"name": name, "clause": clause, "becomes": value, "hint": hint(book, base, name, value),
            "household": about_household(book, name), **structure(book, base, name, value)}


def about_household(book: RuleBook, name: str) -> bool:
    """Whether a condition depends on something about the household (an input column, directly or through
    definitions and criteria) — and not only on policy parameters such as the mechanism being in force."""
    if book.kind_of("household", name) == "column":
        return True
    rule = book.rules.get(name)
    return rule is not None and any(about_household(book, n) for n in ex.names(rule.expr))


def structure(book: RuleBook, base: Evaluation, name: str, value: bool) -> dict[str, Any]:
    """The condition as parts a reader's sentence is made of: a comparison of a household value with the
    value that flips it (``compare``), or yes/no answers (``flags``); nothing where it is neither."""
    rule = book.rules.get(name)
    node = rule.expr if rule else ex.Name(name, 0)
    if isinstance(node, ex.Compare) and not isinstance(node.right, ex.Compare):
        threshold, now = evaluate_expression(base, node.right), evaluate_expression(base, node.left)
        subject = node.left.name if isinstance(node.left, ex.Name) else ex.render(node.left)
        return {"compare": {"subject": subject, "op": node.op if value else NEGATE[node.op],
                            "threshold": _scalar(threshold), "now": _scalar(now)}}
    flags = _flags(book, node, value)
    if flags:
        columns = [c for c, _ in flags[1]]
        return {"flags": {"all": flags[0], "columns": columns, "values": [v for _, v in flags[1]],
                          "now": [_scalar(base.value(c)) for c in columns]}}
    return {}


def _flags(book: RuleBook, node: ex.Node, value: bool) -> tuple[bool, list[tuple[str, bool]]] | None:
    """(every one must hold, [(yes/no column, answer)]) that make `node` `value`; None for other conditions."""
    match node:
        case ex.Name(name=name) if book.kind_of("household", name) == "column":
            return True, [(name, value)]
        case ex.Not(operand=operand):
            return _flags(book, operand, not value)
        case ex.Logic(op=op, operands=operands):
            parts = [_flags(book, o, value) for o in operands]
            if None in parts or any(len(p[1]) > 1 for p in parts):  # type: ignore[index]
                return None
            return (op == "and") == value, [p[1][0] for p in parts]  # type: ignore[index]
    return None


def _scalar(v: Vec) -> Any:
    if not v.known[0]:
        return None
    value = v.values[0]
    return value.item() if hasattr(value, "item") else value


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
