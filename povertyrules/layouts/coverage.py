"""What a file can decide: the rule sets whose every input column is missing, and the decisions they touch.

Said once per run in plain words ("本表无…所需的列：识别结果为需评议的有 N 户"), not only as thousands of per-row
``review``s; `povertyrules inspect` shows the same before anything is scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import REVIEW, RuleBook


@dataclass
class Gap:
    ruleset: str
    description_zh: str
    description_en: str
    columns: list[str]  # contract columns the rule set reads, none of which the file has
    decisions: list[str]  # decisions that depend on the rule set


def _reads(book: RuleBook, name: str, seen: set[str]) -> set[str]:
    """Names `name` depends on, transitively (rules, decisions)."""
    if name in seen:
        return set()
    seen.add(name)
    if name in book.decisions:
        refs = [n for rid in book.decisions[name].outcomes
                for n in (*ex.names(book.rules[rid].expr), *book.rules[rid].cites)]
    elif name in book.rules:
        refs = ex.names(book.rules[name].expr)
    else:
        return set()
    out = set(refs)
    for ref in refs:
        out |= _reads(book, ref, seen)
    return out


def decision_columns(book: RuleBook, decision: str) -> set[str]:
    columns = book.columns("household")
    return {n for n in _reads(book, decision, set()) if n in columns and n != "year"}


def gaps(book: RuleBook, present: set[str]) -> list[Gap]:
    """Household rule sets none of whose input columns is `present`."""
    columns = book.columns("household")
    found: list[Gap] = []
    for ruleset, description in book.rulesets.items():
        rules = [r for r in book.rules.values() if r.ruleset == ruleset and r.entity == "household"]
        reads = {n for r in rules for n in ex.names(r.expr) if n in columns and n != "year"}
        if not reads or reads & present:
            continue
        ids = {r.id for r in rules}
        touched = [d for d in book.decisions if book.decisions[d].entity == "household"
                   and (ids & _reads(book, d, set()))]
        if touched:
            found.append(Gap(ruleset, description.zh, description.en,
                             sorted(reads, key=list(columns).index), touched))
    return found


def present_columns(frame: pd.DataFrame, book: RuleBook) -> set[str]:
    """Contract columns of `frame` (English or Chinese headers) that hold at least one value."""
    from povertyrules.model.columns import header_map, normalize_header

    lookup = header_map(tuple(book.columns("household").values()))
    out = set()
    for header in frame.columns:
        column = lookup.get(normalize_header(header))
        if column is not None and frame[header].notna().any():
            out.add(column.name)
    return out


def notices(book: RuleBook, present: set[str], decisions: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """One (zh, en) sentence per gap, with the count of households it left undecided where known."""
    columns = book.columns("household")
    lines = []
    for gap in gaps(book, present):
        names_zh = "、".join(f"“{columns[c].zh}”" for c in gap.columns)
        names_en = ", ".join(gap.columns)
        parts_zh, parts_en = [], []
        for name in gap.decisions:
            decision = book.decisions[name]
            if decisions is not None and name in decisions:
                count = int((decisions[name] == REVIEW).sum())
                parts_zh.append(f"{decision.description.zh}为“{decision.review.zh}”的有 {count} 户")
                parts_en.append(f"{decision.description.en}: {count} households '{decision.review.en}'")
            else:
                parts_zh.append(f"{decision.description.zh}可能为“{decision.review.zh}”")
                parts_en.append(f"{decision.description.en} may be '{decision.review.en}'")
        lines.append((f"本表无“{gap.description_zh}”所需的列（{names_zh}）：" + "；".join(parts_zh),
                      f"the file has no column for '{gap.description_en}' ({names_en}): " + "; ".join(parts_en)))
    return lines
