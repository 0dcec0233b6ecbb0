"""`score`: household rows in, decisions and error rows out. The CLI and the analysts' API both use it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from povertyrules.decisions.reasons import OUTPUT_VALUES, decision_frame
from povertyrules.engines.vectorized import evaluate
from povertyrules.errors import RuleError
from povertyrules.lang.check import require_parameters
from povertyrules.lang.rulebook import RuleBook, load_rulebook, province_file
from povertyrules.model.columns import ERROR_COLUMNS, HOUSEHOLD_COLUMNS
from povertyrules.model.members import household_sizes, member_citation, parse_members
from povertyrules.model.records import parse_records

DECISIONS = ("identification", "exit", "monitoring")
REPORTED_EXTRA = ("risk_removal",)  # reported where the rule set defines it (from 2021, M21-5)


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
        parts = [_counts(self.decisions[d]).rename_axis("status").reset_index().assign(decision=d)
                 for d in (*DECISIONS, *REPORTED_EXTRA) if d in self.decisions]
        table = pd.concat(parts, ignore_index=True)[["decision", "status", "count"]]
        return table

    def accounting(self) -> dict[str, int]:
        return {"input_rows": self.rows, "decided": len(self.decisions), "error_rows": self.error_rows}


def _counts(statuses: pd.Series) -> pd.Series:
    """Rows per status, a blank status counted as "(blank)" (the counts renamed, not every row replaced)."""
    counts = statuses.value_counts()
    if "(blank)" in counts.index:  # pragma: no cover - no rule set has that outcome: count as before
        return statuses.replace("", "(blank)").value_counts()
    return counts.rename(index={"": "(blank)"})


def resolve_rules(rules: RuleBook | str | Path | None = None, overrides: dict[str, Any] | None = None,
                  override_files: list[str | Path] | None = None, province: str | None = None) -> RuleBook:
    """A `RuleBook` from a loaded one, a rules folder (default: the shipped rules), a province and overrides."""
    if province:
        root = rules.root if isinstance(rules, RuleBook) else rules
        override_files = [province_file(root, province), *(override_files or [])]
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
          sink: Callable[[pd.DataFrame, pa.Table | None], None] | None = None, rows: np.ndarray | None = None,
          province: str | None = None, reasons: str = "main", sink_records: bool = False,
          duplicated_elsewhere: Collection[str] = (), release_input: bool = False) -> ScoreResult:
    """Score household rows (English or Chinese headers) and return decisions and errors.

    :param year: evaluation year for rows without a ``year``/``年度`` value.
    :param rules: a `RuleBook`, a rules folder, or None for the shipped rules.
    :param overrides: parameter name -> value (all years) or ``{date: value}``, for what-if runs.
    :param province: a shipped province file (e.g. ``"云南省"``) whose monitoring lines apply (M21-4).
    :param members: a members sheet; household size is then derived by the ID-1 rules.
    :param progress: called with the number of rows finished after each chunk.
    :param keep_records: also return one record per cited rule per household (for the audit store).
    :param rows: each row's line in the original sheet (from `povertyrules.layouts.prepare`), for error rows.
    :param reasons: ``main`` (one line per row naming the rule that decided each decision) or ``full`` (every
        cited rule with observed values and thresholds).
    :param sink_records: give `sink` each chunk's reason records too (one per household and cited rule).
    :param sink: called with each chunk of decisions (and its reason records, or None) as it is made (to
        stream them to a file); the result's
        `decisions` then leave out the long text columns (`reasons`, `missing_columns`) to save memory.
    :param duplicated_elsewhere: household ids that also occur in another partition of the same input; their
        rows are errors (duplicate id), as they would be in one file.
    :param release_input: `frame` is the caller's to give away: its columns are dropped as they are typed (the
        frame is left without them), so the text and the typed rows are never both whole in memory.
    """
    book = resolve_rules(rules, overrides, override_files, province)
    _check_outputs(book)
    parsed = parse_records(frame, HOUSEHOLD_COLUMNS, file, optional=frozenset({"members"}) if members is not None
                           else frozenset(), unique="household_id", rows=rows,
                           duplicated_elsewhere=duplicated_elsewhere, consume=release_input)
    valid, errors, input_rows = parsed.valid, [parsed.errors], parsed.rows
    known_ids = set(valid["household_id"]) | set(parsed.errors["household_id"]) if members is not None else set()
    del parsed, frame  # one typed copy of the input in memory, not two (nor the text it was typed from)
    valid, year_errors = _fill_year(valid, year, file)
    errors.append(year_errors)
    require_parameters(book, pd.unique(valid["year"]))  # a year with no line stops here, never all `review`
    member_reasons = None
    if members is not None:
        valid, member_errors, member_reasons = _apply_members(book, valid, members, known_ids, file,
                                                              members_file, lang)
        errors.append(member_errors)
    elif "members" not in valid:
        raise RuleError("no members column and no members sheet")  # pragma: no cover - parse_records checks
    parts, records = [], []
    for start in range(0, max(len(valid), 1), chunk_size):
        chunk = valid.iloc[start:start + chunk_size].reset_index(drop=True)
        evaluation = evaluate(book, chunk)
        failed = evaluation.failed()
        if failed.any():  # the rule set fails on these rows: error rows naming them, the others decided
            errors.append(_rule_failures(evaluation, chunk, failed, file))
            chunk = chunk[~failed].reset_index(drop=True)
            evaluation = evaluate(book, chunk)
        frame_part, record_part = decision_frame(evaluation, chunk, book.version, lang, member_reasons,
                                                 with_records=keep_records or sink_records, reasons=reasons)
        if sink is not None:
            sink(frame_part, record_part)
            frame_part = frame_part.drop(columns=["reasons", "missing_columns", "clauses", "trace"])
        parts.append(frame_part)
        if keep_records and record_part is not None and record_part.num_columns:
            records.append(record_part)
        if progress:
            progress(len(chunk))
    decisions = pd.concat(parts, ignore_index=True)
    all_errors = pd.concat([e for e in errors if len(e)], ignore_index=True) if any(len(e) for e in errors) \
        else pd.DataFrame(columns=list(ERROR_COLUMNS))
    return ScoreResult(decisions, all_errors, book.version, input_rows, file, book,
                       pa.concat_tables(records) if records else None, valid if keep_records else None)


def _check_outputs(book: RuleBook) -> None:
    for name in OUTPUT_VALUES.values():
        if book.kind_of("household", name) is None:
            raise RuleError(f"the rule set must define '{name}' (it fills a decision column)", file=str(book.root))
    for name in DECISIONS:
        if name not in book.decisions:
            raise RuleError(f"the rule set must have a decision named '{name}'", file=str(book.root))


def _rule_failures(evaluation, chunk: pd.DataFrame, failed: np.ndarray, file: str) -> pd.DataFrame:
    rows = np.flatnonzero(failed)
    return pd.DataFrame({
        "row": chunk["row"].to_numpy()[rows] if "row" in chunk else rows + 2,
        "household_id": chunk["household_id"].to_numpy()[rows],
        "column": "", "value": "",
        "error": [evaluation.failure(int(i)) for i in rows],
        "file": file,
    })


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
    # a household with a member row that cannot be read has an unknown size (review), never a smaller one
    unreadable = _unreadable_members(book, parsed.errors, lang)
    broken = valid["household_id"].isin(unreadable.index)
    valid = valid.assign(members=derived.where(has_members, fallback).mask(broken))
    none_counted = has_members & (derived == 0) & ~broken
    no_size = ~has_members & fallback.isna() & ~broken
    cite = member_citation(book)  # (the clauses of the counting rules, from the rule files)
    problems.append(_error_rows(valid[none_counted], "members", f"成员表中无人计入家庭人口（{cite}）",
                                f"no member counts toward household size ({cite})", file))
    problems.append(_error_rows(valid[no_size], "members", "家庭人口为空且成员表中无该户",
                                "members is blank and the members sheet has no one for this household", file))
    keep = ~(none_counted | no_size)
    reasons = sizes.reasons.astype(object).combine(unreadable, _join_lines) if len(unreadable) else sizes.reasons
    return valid[keep].reset_index(drop=True), pd.concat(problems, ignore_index=True), reasons


def _unreadable_members(book: RuleBook, errors: pd.DataFrame, lang: str) -> pd.Series:
    """Household id -> a member-counting reason naming its member rows that could not be read."""
    rows = errors[errors["household_id"].astype(str) != ""].groupby("household_id")["row"]
    listed = rows.agg(lambda r: "、".join(str(int(x)) for x in sorted(set(r))))
    cite = member_citation(book)
    if lang == "zh":
        return f"{cite} 成员表第 " + listed + " 行无法读取（见错误文件），家庭人口待核实"
    return f"{cite} household_members: member row(s) " + listed + " could not be read (see the errors file): " \
        "household size to be checked"


def _join_lines(a: object, b: object) -> object:
    present = [x for x in (a, b) if isinstance(x, str) and x]
    return "；".join(present) if present else None
