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
import pyarrow as pa

from povertyrules.decisions.reasons import reason_table
from povertyrules.decisions.trace import codes, decode, trace_rules
from povertyrules.engines.vectorized import Evaluation, Vec, evaluate_columns, evaluate_expression
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import RuleBook, load_rulebook
from povertyrules.store.models import Decision, Reason, Run
from povertyrules.store.rows import readable

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


def explain_decisions(run: Run, decisions: list[Decision]) -> dict[str, Explanation]:
    """Household id -> the explanation of its stored decision in `run`: reasons re-derived from the snapshot
    and what would change each outcome, from one shared evaluation of the households' rows."""
    evaluated, records = derive_reasons(run, decisions)
    reasons = {h: [Reason(run_id=run.id, **r) for r in rs] for h, rs in records.items()}
    return explain_many(run, decisions, reasons, evaluated)


def explain_stored(run: Run, decision: Decision, reasons: list[Reason]) -> Explanation:
    return explain_many(run, [decision], {decision.household_id: reasons})[decision.household_id]


def explain_many(run: Run, decisions: list[Decision], reasons: dict[str, list[Reason]],
                 evaluated: Evaluation | None = None) -> dict[str, Explanation]:
    """The explanations of several stored decisions of one run, their counterfactuals worked out in batches
    shared by all of them (one evaluation for their rows — `evaluated`, where the caller already has it from
    `derive_reasons` — one for all their single flips, one for pairs)."""
    known = json.loads(run.clauses)
    book = snapshot_rulebook(run)
    decisions = readable(run, decisions)
    changes = counterfactuals_many(book, decisions, [reasons.get(d.household_id, []) for d in decisions],
                                   evaluated)
    out = {}
    for decision, found in zip(decisions, changes, strict=True):
        mine = reasons.get(decision.household_id, [])
        cited = {c.strip() for r in mine for c in r.clause.split(",")}
        clause_texts = {c: t for c, t in known.items() if c in cited and t}
        out[decision.household_id] = Explanation(run, decision, mine, clause_texts, found)
    return out


def evaluate_stored(book: RuleBook, decisions: list[Decision]) -> Evaluation:
    """The run's rules on stored decisions' input rows (one row each), as they were evaluated when scored."""
    years = np.asarray([int(d.year) for d in decisions], dtype="int64")
    return _evaluate(book, input_columns(decisions, book), years, np.arange(len(decisions)))


def derive_reasons(run: Run, decisions: list[Decision]) -> tuple[Evaluation, dict[str, list[dict]]]:
    """The evaluation of stored decisions and, per household, its reason records (every cited rule with
    verdict, observed values, thresholds and message), re-derived from the run's rule snapshot; the stored
    trace must agree with the re-derivation."""
    book = snapshot_rulebook(run)
    decisions = readable(run, decisions)  # (input rows as objects, whichever way they were stored)
    result = evaluate_stored(book, decisions)
    width = len(json.loads(run.trace_rules))
    stored = decode([d.trace for d in decisions], width)
    derived = codes(result, trace_rules(book))
    if stored.shape == derived.shape and not (stored == derived).all():
        raise ValueError(f"run {run.id}: the stored trace differs from the one re-derived from its snapshot")
    out: dict[str, list[dict]] = {}
    if not decisions:
        return result, out
    records = reason_table(result, pa.array([d.household_id for d in decisions], type=pa.string()), run.lang)
    if not records.num_rows:
        return result, out
    fields = ["household_id", "seq", "decision", "rule_id", "kind", "clause", "verdict", "observed", "thresholds",
              "message"]
    for record in records.select(fields).sort_by([("household_id", "ascending"), ("seq", "ascending")]).to_pylist():
        out.setdefault(record["household_id"], []).append(record)
    return result, out


def input_columns(decisions: list[Decision], book: RuleBook) -> dict[str, Vec]:
    """The stored input rows as engine columns, one row per decision."""
    rows = [json.loads(d.inputs) for d in decisions]
    columns = {}
    for name, column in book.columns("household").items():
        present = [row.get(name) for row in rows]
        if all(v is None for v in present):
            continue
        known = np.asarray([v is not None for v in present], dtype=bool)
        if column.type == "bool":
            values = np.asarray([bool(v) for v in present], dtype=bool)
        elif column.type == "number":
            values = np.asarray([float(v) if v is not None else np.nan for v in present], dtype=float)
            known &= ~np.isnan(values)
            values = np.where(known, values, 0.0)
        else:
            values = np.asarray(["" if v is None else str(v) for v in present], dtype=str)
        columns[name] = Vec(values, known)
    return columns


def _evaluate(book: RuleBook, columns: dict[str, Vec], years: np.ndarray, rows: np.ndarray,
              forced=None) -> Evaluation:
    """The rules on `rows` (indexes into the decisions whose `columns` and `years` are given)."""
    taken = {name: Vec(v.values[rows], v.known[rows]) for name, v in columns.items()}
    return evaluate_columns(book, taken, len(rows), years=years[rows], forced=forced)


def counterfactuals_many(book: RuleBook, decisions: list[Decision], reasons: list[list[Reason]],
                         evaluated: Evaluation | None = None) -> list[list[Change]]:
    """For each decision of each household, the single (or else paired) flipped conditions that change its
    outcome.

    The households' rows are evaluated in one batch (or given, as `evaluated`); all single flips and all
    pairs of flips of all of them in a second, each on a copy of its household's row. A pair is kept only
    for a decision that no single flip moves.
    """
    if not decisions:
        return []
    columns = input_columns(decisions, book)
    years = np.asarray([int(d.year) for d in decisions], dtype="int64")
    whole = evaluated if evaluated is not None else _evaluate(book, columns, years, np.arange(len(decisions)))
    bases = [whole.row(i) for i in range(len(decisions))]
    names = [*DECISIONS, *(d for d in REPORTED_EXTRA if d in book.decisions)]
    candidates = [{name: _candidates(book, base, [r for r in mine if r.decision == name]) for name in names}
                  for base, mine in zip(bases, reasons, strict=True)]
    singles = [{name: [(c,) for c in found[name]] for name in names} for found in candidates]
    pairs = [{name: [c for c in itertools.combinations(mine[name], 2) if c[0][0] != c[1][0]] for name in names}
             for mine in candidates]
    by_one, by_two = _search(book, columns, years, bases, singles, pairs)
    return [one + [c for c in two if not any(x.decision == c.decision for x in one)]
            for one, two in zip(by_one, by_two, strict=True)]


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


def _search(book: RuleBook, columns: dict[str, Vec], years: np.ndarray, bases: list[Evaluation],
            *groups: list[dict[str, list[tuple[tuple[str, bool], ...]]]]) -> list[list[list[Change]]]:
    """Evaluate every combination of forced values of every household of every group in one batch; keep, per
    group and household, those that move their decision."""
    flat = [(g, h, name, combo) for g, combos in enumerate(groups) for h, group in enumerate(combos)
            for name, options in group.items() for combo in options]
    changes: list[list[list[Change]]] = [[[] for _ in bases] for _ in groups]
    if not flat:
        return changes
    forced: dict[str, tuple[Vec, np.ndarray]] = {}
    for target in {n for *_, combo in flat for n, _ in combo}:
        values, rows = np.zeros(len(flat), dtype=bool), np.zeros(len(flat), dtype=bool)
        for i, (*_, combo) in enumerate(flat):
            for n, value in combo:
                if n == target:
                    values[i], rows[i] = value, True
        forced[target] = (Vec(values, True), rows)
    households = np.asarray([h for _, h, _, _ in flat], dtype=np.int64)
    variants = _evaluate(book, columns, years, households, forced)
    outcomes = {name: variants.outcome(name) for name in {name for _, _, name, _ in flat}}
    for i, (g, h, name, combo) in enumerate(flat):
        outcome, current = outcomes[name][i], bases[h].outcome(name)[0]
        if outcome != current and outcome != "review":
            changes[g][h].append(Change(name, str(outcome),
                                        [_condition(book, bases[h], n, value) for n, value in combo]))
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
    if isinstance(node, ex.Logic):  # e.g. a sharp drop: last year's income known and this year's far below it
        every = (node.op == "and") == value
        operands = [o for o in node.operands if not (every and _already(base, o, value))] or node.operands
        parts = [_part(book, base, o, value) for o in operands]  # (with every one needed, those still to come)
        if None not in parts:
            return {"parts": {"all": every, "items": parts}}
    return {}


def _already(base: Evaluation, node: ex.Node, value: bool) -> bool:
    """Whether `node` is known to be `value` for the household now."""
    now = evaluate_expression(base, node)
    return bool(now.known[0]) and bool(now.values[0]) == value


def _part(book: RuleBook, base: Evaluation, node: ex.Node, value: bool) -> dict[str, Any] | None:
    """One operand of a condition made of several, as a comparison or a yes/no answer (None otherwise)."""
    if isinstance(node, ex.Compare) and not isinstance(node.right, ex.Compare) and isinstance(node.left, ex.Name):
        return {"compare": {"subject": node.left.name, "op": node.op if value else NEGATE[node.op],
                            "threshold": _scalar(evaluate_expression(base, node.right)),
                            "now": _scalar(evaluate_expression(base, node.left))}}
    flags = _flags(book, node, value)
    if flags and len(flags[1]) == 1:
        column, answer = flags[1][0]
        return {"flags": {"all": True, "columns": [column], "values": [answer], "now": [_scalar(base.value(column))]}}
    return None


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
