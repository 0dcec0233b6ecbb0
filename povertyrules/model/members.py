"""Household size from a members sheet, by the ID-1 membership rules in ``rules/membership.yaml``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from povertyrules.engines.vectorized import evaluate
from povertyrules.lang.rulebook import REVIEW, RuleBook
from povertyrules.model.columns import MEMBER_COLUMNS
from povertyrules.model.records import Parsed, parse_records


@dataclass
class HouseholdSizes:
    """Per household id: counted members (NaN where a member is undecided) and an ID-1 reason line."""

    members: pd.Series
    reasons: pd.Series
    errors: pd.DataFrame  # member rows that could not be read


def parse_members(raw: pd.DataFrame, file: str) -> Parsed:
    parsed = parse_records(raw, MEMBER_COLUMNS, file)
    valid = parsed.valid
    if "situation" in valid:
        valid["situation"] = valid["situation"].fillna("none")  # blank situation means "none of these"
    else:
        valid["situation"] = "none"
    return parsed


def member_citation(book: RuleBook) -> str:
    """The clauses the member rules cite (the ID-1 counting of household members), from the rule files."""
    decision = book.decisions["counted"]
    return ",".join(dict.fromkeys(c for rid in decision.outcomes for c in book.rules[rid].clauses))


def household_sizes(book: RuleBook, members: Parsed, lang: str = "zh") -> HouseholdSizes:
    """Count the members ID-1 counts, per household; list members the rules could not decide."""
    frame = members.valid
    result = evaluate(book, frame, entity="member")
    outcome = pd.Series(result.outcome("counted"), index=frame.index)
    ids = frame["household_id"]
    counted = (outcome == "counted").groupby(ids).sum().astype(float)
    total = outcome.groupby(ids).size()
    undecided = frame.loc[outcome == REVIEW].groupby("household_id")["member_id"].agg(", ".join)
    excluded = frame.loc[outcome == "not_counted"].groupby("household_id")["member_id"].agg(", ".join)
    sizes = counted.where(~counted.index.isin(undecided.index), np.nan)
    zh = lang == "zh"
    cite = member_citation(book)

    def line(hid: str) -> str:
        head = (f"{cite} 家庭人口计入 {int(counted[hid])} / {int(total[hid])} 人" if zh
                else f"{cite} household_members: {int(counted[hid])} of {int(total[hid])} members counted")
        if hid in excluded.index:
            head += f"（不计入：{excluded[hid]}）" if zh else f" (not counted: {excluded[hid]})"
        if hid in undecided.index:
            head += f"；待核实成员：{undecided[hid]}" if zh else f"; members to check: {undecided[hid]}"
        return head.replace(";", "；")

    reasons = pd.Series({hid: line(hid) for hid in total.index}, dtype=object)
    return HouseholdSizes(sizes, reasons, members.errors)
