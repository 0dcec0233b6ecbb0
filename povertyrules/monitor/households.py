"""The household snapshots events are applied to: the latest stored run, or a county spreadsheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from povertyrules.io.tables import read_table
from povertyrules.lang.rulebook import RuleBook
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records
from povertyrules.store.models import Decision, Run
from povertyrules.store.rows import codebook_of, input_records


def from_store(engine: Engine, book: RuleBook, run_id: int | None = None) -> dict[str, dict[str, Any]]:
    """Typed input rows of the latest (or given) run, keyed by household id."""
    with Session(engine) as session:
        run_id = run_id or session.execute(select(func.max(Run.id))).scalar()
        codebook = codebook_of(session.execute(select(Run.codebook).where(Run.id == run_id)).scalar())
        rows = session.execute(select(Decision.household_id, Decision.year, Decision.inputs)
                               .where(Decision.run_id == run_id)).all()
    households = {}
    for (hid, year, _), inputs in zip(rows, input_records(codebook, [r[2] for r in rows]), strict=True):
        row = {k: v for k, v in inputs.items() if k in book.columns("household")}
        row["year"] = int(year)
        households[hid] = row
    return households


def from_file(path: Path, year: int | None = None) -> dict[str, dict[str, Any]]:
    """Typed rows of a county spreadsheet (rows that cannot be read are left out)."""
    parsed = parse_records(read_table(path), HOUSEHOLD_COLUMNS, str(path), unique="household_id")
    frame = parsed.valid
    if year is not None:
        frame["year"] = frame["year"].fillna(year) if "year" in frame else year
    frame = frame[frame["year"].notna()]
    households = {}
    for row in frame.astype(object).where(frame.notna(), None).to_dict("records"):
        row.pop("row", None)
        households[str(row["household_id"])] = row
    return households
