"""Rule test cases kept as data (``rules/tests/*.yaml``), in OpenFisca's style: each case is named by a
sentence, cites the clauses it exercises, and gives input and expected output.

.. code-block:: yaml

    defaults:            # a household every case starts from
      year: 2019
      input: {household_id: h1, members: 2, net_income: 5000, ...}
    cases:
      - name: A household exactly at the line is not below it, so it is not identified as poor
        clause: [ID-2.2, ID-3]
        input: {net_income: 6436}
        output: {identification: not_poor}

A case may name a ``province`` (a shipped province file, as ``--province`` does). Output keys are decision
columns, plus ``reasons_include`` (texts that must appear in the reasons) and ``error_column`` (the row must
instead be listed as an error on that column) and ``stops_with`` (the run must stop because this required
parameter has no value for the year).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from povertyrules.errors import MissingParameters, RuleError
from povertyrules.lang import safeyaml
from povertyrules.lang.rulebook import RuleBook


@dataclass
class Case:
    name: str
    clauses: list[str]
    year: int | None
    input: dict[str, Any]
    output: dict[str, Any]
    file: str
    members: list[dict[str, Any]] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    province: str | None = None


def load_cases(folder: Path) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(folder.glob("*.yaml")):
        data = safeyaml.load(path) or {}
        if not isinstance(data, dict) or not isinstance(data.get("defaults", {}), dict) \
                or not isinstance(data.get("cases", []), list):
            raise RuleError("expected a mapping with 'defaults' (a mapping) and 'cases' (a list)", file=str(path))
        defaults = data.get("defaults", {})
        for raw in data.get("cases", []):
            if not isinstance(raw, dict):
                raise RuleError(f"a test case must be a mapping, got {raw!r:.60}", file=str(path))
            unknown = set(raw) - {"name", "clause", "year", "input", "output", "members", "overrides",
                                   "province"}
            if unknown or "name" not in raw or "output" not in raw:
                raise RuleError(f"bad test case {raw.get('name')!r}: unexpected keys {sorted(unknown)} or no "
                                "name/output", file=str(path))
            clause = raw.get("clause", [])
            cases.append(Case(
                name=raw["name"], clauses=[clause] if isinstance(clause, str) else list(clause),
                year=raw.get("year", defaults.get("year")),
                input={**defaults.get("input", {}), **raw.get("input", {})}, output=raw["output"],
                file=str(path), members=raw.get("members"), overrides=raw.get("overrides", {}),
                province=raw.get("province", defaults.get("province"))))
    return cases


def run_case(book: RuleBook, case: Case, lang: str = "en") -> list[str]:
    """Mismatches between the case's expected output and what the rules decide (empty when it passes)."""
    from povertyrules.scoring import score  # scoring imports the language package, not the reverse

    frame = pd.DataFrame([{k: ("" if v is None else str(v)) for k, v in case.input.items()}])
    members = pd.DataFrame([{k: ("" if v is None else str(v)) for k, v in m.items()} for m in case.members]) \
        if case.members else None
    expected = dict(case.output)
    stops_with = expected.pop("stops_with", None)
    try:
        result = score(frame, year=case.year, rules=book, overrides=case.overrides or None, members=members,
                       lang=lang, file=case.file, province=case.province, reasons="full")
    except MissingParameters as exc:
        if stops_with is not None and stops_with in exc.missing:
            return []
        raise
    if stops_with is not None:
        return [f"expected the run to stop for want of parameter {stops_with}, but it scored"]
    error_column = expected.pop("error_column", None)
    if error_column is not None:
        own = result.errors[result.errors["file"] == case.file]
        return [] if error_column in set(own["column"]) else [
            f"expected an error on column {error_column}, got errors {own['column'].tolist()}"]
    if result.decisions.empty:
        return [f"no decision; errors: {result.errors['error'].tolist()}"]
    row = result.decisions.iloc[0]
    problems = []
    for text in expected.pop("reasons_include", []):
        if text not in str(row["reasons"]):
            problems.append(f"reasons lack {text!r}: {row['reasons']}")
    for column, want in expected.items():
        got = row[column]
        got = "" if pd.isna(got) else got
        same = abs(float(got) - float(want)) < 1e-6 if isinstance(want, int | float) and got != "" else \
            str(got) == ("" if want is None else str(want))
        if not same:
            problems.append(f"{column}: expected {want!r}, got {got!r}")
    return problems
