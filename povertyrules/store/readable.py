"""A stored decision's reasons, rendered from its trace for a person: per decision its outcome, the rule that
decided it first (marked), then the other rules checked — each as the rule's own words from the rule files,
its verdict, and its message with the household's values as people write them (``2,928 元``). No rule id,
column name or status code appears in the text; the clause id is kept apart, as the citation.

The reason records are those `povertyrules.store.runs.reasons_for` re-derives from the run's snapshot; the
decisive rule comes from the stored trace through the decision's outcome table (`decisions.trace.decisive`).
Words come from `rules/explain/quantities.yaml`, statuses and rules from the rule files.
"""

from __future__ import annotations

import string
from functools import cache
from typing import Any

from povertyrules.decisions.trace import agreeing, decisive, verdicts_of
from povertyrules.engines.outcomes import FALSE, TRUE, UNKNOWN, outcome_table
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import REVIEW, RuleBook
from povertyrules.lang.safeyaml import load as load_yaml
from povertyrules.shipped import rules_folder
from povertyrules.store.changes import decision_name, number, vocabulary

STATE = {"false": FALSE, "true": TRUE, "unknown": UNKNOWN}
MARK = {"true": "✓", "false": "✗", "unknown": "?"}


def value_text(value: Any, lang: str) -> str:
    """A value as a reader writes it: ``2,928``, 是 / 否, or 未填 for a value the records lack."""
    words = vocabulary()["words"][lang]
    if value is None:
        return words["blank"]
    if isinstance(value, bool):
        return words["yes"] if value else words["no"]
    return number(value)


def _message(book: RuleBook, rule_id: str, values: dict[str, Any], lang: str) -> str:
    rule = book.rules[rule_id]
    template = getattr(rule.message, lang) if rule.message else ""
    out = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field:
            out.append(value_text(values.get(field), lang))
    return "".join(out)


def _line(book: RuleBook, record: dict[str, Any], lang: str) -> str:
    words = vocabulary()["words"][lang]
    rule = book.rules[record["rule_id"]]
    verdict = words["verdicts"][record["verdict"]]
    description = getattr(rule.description, lang)
    if rule.kind == "outcome":
        decision = book.decisions[rule.decision or ""]
        outcome = decision.label(rule.outcome or "", lang)
        return words["outcome_line"].format(rule=description, verdict=verdict, outcome=outcome)
    values = {**record["observed"], **record["thresholds"]}
    message = _message(book, rule.id, values, lang)
    return words["criterion_line"].format(rule=description, verdict=verdict, message=message) if message else \
        words["bare_line"].format(rule=description, verdict=verdict)


def _criteria_of(book: RuleBook, rule_id: str) -> set[str]:
    """The criteria an outcome rule names, with the criteria they name in turn."""
    found: set[str] = set()
    todo = [n for n in (*ex.names(book.rules[rule_id].expr), *book.rules[rule_id].cites)]
    while todo:
        name = todo.pop()
        if name not in found and book.kind_of("household", name) == "criterion":
            found.add(name)
            todo.extend(ex.names(book.rules[name].expr))
    return found


def readable_reasons(book: RuleBook, trace: str, trace_rules: list[str], outcomes: dict[str, str | None],
                     records: list[dict[str, Any]], lang: str = "zh") -> list[dict[str, Any]]:
    """Per decision: its name, the outcome's label, and its reasons (decisive first) as
    ``{"rule_id", "mark", "verdict", "decisive", "clause", "text"}`` (the rule id is for programs; people see
    `text`). `outcomes` are the stored ones, used where the
    trace is absent; with a trace, each outcome is resolved from it."""
    verdicts = verdicts_of(trace, trace_rules) if trace else {}
    sections = []
    for name in dict.fromkeys(r["decision"] for r in records):
        if name not in book.decisions:
            continue
        mine = [r for r in records if r["decision"] == name]
        decided, value = None, outcomes.get(name)
        if verdicts:
            table = outcome_table(book, name)
            code = sum(STATE[verdicts.get(r.id, "unknown")] * 3 ** i for i, r in enumerate(table.rules))
            decided = decisive(book, name, code)[1]
            resolved = table.resolve(code).decided
            value = REVIEW if resolved is None else resolved
        deciding = [decided] if decided is not None else agreeing(book, name, code) if verdicts else []
        first = [r for r in mine if r["rule_id"] in deciding]  # the deciding rule, or the rules that agree
        for rule in deciding:
            linked = _criteria_of(book, rule)
            first += [r for r in mine if r["rule_id"] in linked and r not in first]
        rest = [r for r in mine if r not in first]
        sections.append({
            "decision": name, "name": decision_name(name, lang),
            "outcome": book.decisions[name].label(value or "", lang),
            "reasons": [{"rule_id": r["rule_id"], "mark": MARK.get(r["verdict"], "?"), "verdict": r["verdict"],
                         "decisive": r["rule_id"] in deciding, "clause": r["clause"],
                         "text": _line(book, r, lang)} for r in first + rest],
        })
    return sections


@cache
def _summaries() -> dict[str, Any]:
    return load_yaml(rules_folder() / "explain" / "clause_summaries.yaml")


def clause_texts(clauses: dict[str, str], lang: str = "zh") -> dict[str, str]:
    """The cited clauses' texts for a reader: the word-for-word texts, and for facts that the policy folder
    states only in English, the Chinese summary (marked as such, with its source) for a Chinese reader."""
    if lang != "zh":
        return dict(clauses)
    known = _summaries()
    out = {}
    for clause, text in clauses.items():
        summary = known["summaries"].get(clause)
        out[clause] = summary["zh"] + known["marker"]["zh"].format(source=summary["source"]) if summary else text
    return out
