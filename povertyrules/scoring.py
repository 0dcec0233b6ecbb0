"""`score`: household rows in, decisions and error rows out. The CLI and the analysts' API both use it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from povertyrules.decisions.reasons import OUTPUT_VALUES, decision_frame
from povertyrules.engines.vectorized import evaluate
from povertyrules.errors import RuleError
from povertyrules.lang.rulebook import RuleBook, load_rulebook
from povertyrules.model.columns import ERROR_COLUMNS, HOUSEHOLD_COLUMNS
from povertyrules.model.members import household_sizes, parse_members
from povertyrules.model.records import parse_records

DECISIONS = ("identification", "exit", "monitoring")


@dataclass
class ScoreResult:
    """Decisions for the rows that could be read, error rows for the others, and the rule set's version."""

    decisions: pd.DataFrame
    errors: pd.DataFrame
    rules_version: str
    rows: int
    file: str
    book: RuleBook
    #: one record per cited rule per household (only when scored with ``keep_records=True``)
    records: pa.Table | None = None
    #: the typed input rows that were decided (only when scored with ``keep_records=True``)
    inputs: pd.DataFrame | None = None
    #: register records behind derived facts (`povertyrules.registers.match.EVIDENCE_COLUMNS`), when matched
    evidence: pd.DataFrame | None = None
    #: where a register says otherwise than the household file (`CONTRADICTION_COLUMNS`), when matched
    contradictions: pd.DataFrame | None = None

    @property
    def error_rows(self) -> int:
        """Input household rows listed in `errors` (one row may have several error lines)."""
        own = self.errors[self.errors["file"] == self.file]
        return int(own["row"].nunique())

    def summary(self) -> pd.DataFrame:
        """Counts per status of each decision, plus the row accounting."""
        parts = [self.decisions[d].replace("", "(blank)").value_counts().rename_axis("status").reset_index()
                 .assign(decision=d) for d in DECISIONS]
        table = pd.concat(parts, ignore_index=True)[["decision", "status", "count"]]
        return table

    def accounting(self) -> dict[str, int]:
        return {"input_rows": self.rows, "decided": len(self.decisions), "error_rows": self.error_rows}


def resolve_rules(rules: RuleBook | str | Path | None = None, overrides: dict[str, Any] | None = None,
                  override_files: list[str | Path] | None = None) -> RuleBook:
    """A `RuleBook` from a loaded one, a rules folder (default: the shipped rules) and overrides."""
    if isinstance(rules, RuleBook):
        if overrides or override_files:
            return load_rulebook(rules.root, [*rules.override_files, *(override_files or [])],
                                 {**rules.override_values, **(overrides or {})})
        return rules
    return load_rulebook(rules, override_files, overrides)


def score(frame: pd.DataFrame, *, year: int | None = None, rules: RuleBook | str | Path | None = None,
          overrides: dict[str, Any] | None = None, override_files: list[str | Path] | None = None,
          members: pd.DataFrame | None = None, lang: str = "zh", file: str = "<households>",
          members_file: str = "<members>", chunk_size: int = 50_000,
          progress: Callable[[int], None] | None = None, keep_records: bool = False,
          sink: Callable[[pd.DataFrame], None] | None = None, rows: np.ndarray | None = None) -> ScoreResult:
    """Score household rows (English or Chinese headers) and return decisions and errors.

    :param year: evaluation year for rows without a ``year``/``年度`` value.
    :param rules: a `RuleBook`, a rules folder, or None for the shipped rules.
    :param overrides: parameter name -> value (all years) or ``{date: value}``, for what-if runs.
    :param members: a members sheet; household size is then derived by the ID-1 rules.
    :param progress: called with the number of rows finished after each chunk.
    :param keep_records: also return one record per cited rule per household (for the audit store).
    :param rows: each row's line in the original sheet (from `povertyrules.layouts.prepare`), for error rows.
    :param sink: called with each chunk of decisions as it is made (to stream them to a file); the result's
        `decisions` then leave out the long text columns (`reasons`, `missing_columns`) to save memory.
    """
    book = resolve_rules(rules, overrides, override_files)
    _check_outputs(book)
    parsed = parse_records(frame, HOUSEHOLD_COLUMNS, file, optional=frozenset({"members"}) if members is not None
                           else frozenset(), unique="household_id", rows=rows)
    valid, errors = parsed.valid, [parsed.errors]
    valid, year_errors = _fill_year(valid, year, file)
    errors.append(year_errors)
    member_reasons = None
    if members is not None:
        known_ids = set(parsed.valid["household_id"]) | set(parsed.errors["household_id"])
        valid, member_errors, member_reasons = _apply_members(book, valid, members, known_ids, file,
                                                              members_file, lang)
        errors.append(member_errors)
    elif "members" not in valid:
        raise RuleError("no members column and no members sheet")  # pragma: no cover - parse_records checks
    parts, records = [], []
    for start in range(0, max(len(valid), 1), chunk_size):
        chunk = valid.iloc[start:start + chunk_size].reset_index(drop=True)
        frame_part, record_part = decision_frame(evaluate(book, chunk), chunk, book.version, lang, member_reasons,
                                                 with_records=keep_records)
        if sink is not None:
            sink(frame_part)
            frame_part = frame_part.drop(columns=["reasons", "missing_columns"])
        parts.append(frame_part)
        if record_part is not None and record_part.num_columns:
            records.append(record_part)
        if progress:
            progress(len(chunk))
    decisions = pd.concat(parts, ignore_index=True)
    all_errors = pd.concat([e for e in errors if len(e)], ignore_index=True) if any(len(e) for e in errors) \
        else pd.DataFrame(columns=list(ERROR_COLUMNS))
    return ScoreResult(decisions, all_errors, book.version, parsed.rows, file, book,
                       pa.concat_tables(records) if records else None, valid if keep_records else None)


def _check_outputs(book: RuleBook) -> None:
    for name in OUTPUT_VALUES.values():
        if book.kind_of("household", name) is None:
            raise RuleError(f"the rule set must define '{name}' (it fills a decision column)", file=str(book.root))
    for name in DECISIONS:
        if name not in book.decisions:
            raise RuleError(f"the rule set must have a decision named '{name}'", file=str(book.root))


def _error_rows(rows: pd.DataFrame, column: str, zh: str, en: str, file: str) -> pd.DataFrame:
    return pd.DataFrame({
        "row": rows["row"].to_numpy(),
        "household_id": rows["household_id"].to_numpy(),
        "column": column,
        "value": rows[column].astype("string").fillna("").to_numpy() if column in rows else "",
        "error": f"{zh} / {en}",
        "file": file,
    })


def _fill_year(valid: pd.DataFrame, year: int | None, file: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    years = valid["year"] if "year" in valid else pd.Series(np.nan, index=valid.index)
    if year is not None:
        years = years.fillna(year)
    lacking = years.isna()
    bad = _error_rows(valid[lacking].assign(year=""), "year", "年度为空且未指定 --year",
                      "no year in the row and no --year given", file)
    valid = valid[~lacking].assign(year=years[~lacking].astype("int64")).reset_index(drop=True)
    return valid, bad


def _apply_members(book: RuleBook, valid: pd.DataFrame, raw: pd.DataFrame, known_ids: set[str], file: str,
                   members_file: str, lang: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Household size from the members sheet (ID-1); the members column is the fallback."""
    parsed = parse_members(raw, members_file)
    sizes = household_sizes(book, parsed, lang)
    problems = [parsed.errors]
    orphans = parsed.valid[~parsed.valid["household_id"].isin(known_ids)]
    if len(orphans):
        problems.append(pd.DataFrame({
            "row": orphans["row"].to_numpy(), "household_id": orphans["household_id"].to_numpy(),
            "column": "household_id", "value": orphans["household_id"].to_numpy(),
            "error": "成员所属户不在户表中（未计入任何户） / member's household is not in the households file",
            "file": members_file}))
    derived = valid["household_id"].map(sizes.members)
    has_members = valid["household_id"].isin(sizes.members.index)
    fallback = valid["members"] if "members" in valid else pd.Series(np.nan, index=valid.index)
    valid = valid.assign(members=derived.where(has_members, fallback))
    none_counted = has_members & (derived == 0)
    no_size = ~has_members & fallback.isna()
    problems.append(_error_rows(valid[none_counted], "members", "按ID-1计入的家庭人口为0",
                                "no member counts toward household size under ID-1", file))
    problems.append(_error_rows(valid[no_size], "members", "家庭人口为空且成员表中无该户",
                                "members is blank and the members sheet has no one for this household", file))
    keep = ~(none_counted | no_size)
    return valid[keep].reset_index(drop=True), pd.concat(problems, ignore_index=True), sizes.reasons
