"""Rows written in bulk and hashed as written: the JSON of input rows, exact round trips on both backends,
the integrity chain over them, and runs sealed by the earlier scheme (each row's repr) still verifying."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes
from sqlalchemy import select, text
from sqlmodel import Session

from povertyrules.store import database, integrity
from povertyrules.store.database import arrow_rows, bulk_insert_table, connect
from povertyrules.store.models import Decision, Run, RunError
from povertyrules.store.runs import DECISION_FIELDS, ERROR_FIELDS, json_records

from .conftest import JSON_TEXT, json_expected


@settings(max_examples=60, deadline=None)
@given(data_frames([column("f", elements=st.floats(allow_nan=True, allow_infinity=True), dtype=float),
                    column("i", elements=st.integers(-2**53, 2**53), dtype="int64"),
                    column("b", elements=st.sampled_from([True, False, None]), dtype=object),
                    column("s", elements=st.one_of(st.none(), JSON_TEXT), dtype=object),
                    column("键 \"q\"", elements=st.one_of(st.none(), JSON_TEXT), dtype=object)],
                   index=range_indexes(max_size=20)))
def test_each_row_as_json_reads_back_as_its_values(frame):
    frame["b"] = frame["b"].astype("boolean")
    frame["c"] = frame["s"].astype("category")
    lines = json_records(frame).to_pylist()
    assert len(lines) == len(frame)
    for line, (_, row) in zip(lines, frame.iterrows(), strict=True):
        assert "\n" not in line
        read = json.loads(line)
        assert list(read) == list(frame.columns)
        for name in frame.columns:
            assert read[name] == json_expected(row[name]), (name, row[name], line)
        if read["f"] is not None:
            assert isinstance(read["f"], float)  # 4.0, not 4: a float column reads back as floats


def test_a_text_column_holding_numbers_is_written_as_json_writes_them():
    frame = pd.DataFrame({"x": pd.Series(["a", 5, 2.5, None], dtype=object)})
    assert [json.loads(v)["x"] for v in json_records(frame).to_pylist()] == ["a", 5, 2.5, None]


TRICKY_TEXT = ["", "引号\"和\\反斜杠", "line\nbreak\r\tand, comma", "\u2028 \u0085 \x01", "𝟘 emoji 😀", "\\.",
               "NULL", "  spaces  "]
TRICKY_FLOATS = [0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, -123456.789, 1e16, float("nan"), None]


def _run(session: Session) -> int:
    run = Run(created_at=dt.datetime.now(dt.UTC), operator="t", input_file="x.csv", input_sha256="", year=2020,
              rules_version="v", decided=0, error_rows=0, input_rows=0, parameters="{}", rules_snapshot="{}",
              clauses="{}")
    session.add(run)
    session.flush()
    return int(run.id)


def _decisions(run_id: int, n: int) -> pd.DataFrame:
    texts = [TRICKY_TEXT[i % len(TRICKY_TEXT)] for i in range(n)]
    floats = [TRICKY_FLOATS[i % len(TRICKY_FLOATS)] for i in range(n)]
    frame = pd.DataFrame({c: [f"{c}{i}" for i in range(n)] for c in DECISION_FIELDS})
    return frame.assign(run_id=run_id, year=2020, row=range(2, n + 2), household_id=[f"h{i}" for i in range(n)],
                        poverty_line=floats, monitoring_line=np.nan, per_capita_income=floats[::-1],
                        four_look_score=3.0, reasons=texts, village=[None if i % 3 else t for i, t in enumerate(texts)],
                        inputs=[json.dumps({"t": t}, ensure_ascii=False) for t in texts])


def _store(db: str, n: int = 40, written=None) -> tuple[object, pa.Table]:
    engine = connect(db)
    with Session(engine) as session:
        connection = session.connection()
        run_id = _run(session)
        rows = arrow_rows(Decision.__table__, _decisions(run_id, n), DECISION_FIELDS)
        bulk_insert_table(connection, "decision", rows)
        integrity.seal(connection, run_id, {"decision": written(rows) if written else rows})
        session.commit()
    return engine, rows


def test_tricky_values_go_in_and_come_back_exactly_and_the_run_verifies(db):
    engine, rows = _store(db)
    report = integrity.verify(engine)
    assert report.ok and report.runs == 1, report.problems
    with Session(engine) as session:
        stored = session.execute(select(*(Decision.__table__.c[c] for c in DECISION_FIELDS))
                                 .order_by(Decision.id)).all()
    for name, values in zip(DECISION_FIELDS, zip(*stored, strict=True), strict=True):
        written = rows.column(name).to_pylist()
        if name in ("poverty_line", "per_capita_income"):  # bit for bit (SQLite keeps -0 as 0: so does the hash)
            assert [None if v is None else (v + 0.0).hex() for v in values] == [
                None if v is None else (v + 0.0).hex() for v in written], name
            assert None in values and not any(v != v for v in values if v is not None)  # NaN written as blank
        else:
            assert list(values) == written, name
    digest = json.loads(session_digest(engine).tables)["decision"]
    assert digest["rows"] == integrity.ROW_SCHEME and digest["columns"][0] == "id"


def session_digest(engine) -> integrity.RunDigest:
    with Session(engine) as session:
        return session.execute(select(integrity.RunDigest)).scalars().one()


def _tamper(engine, statement: str) -> None:
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER decision_append_only ON decision" if pg else
                                "DROP TRIGGER decision_no_update"))
        connection.execute(text(statement))


@pytest.mark.parametrize("change", [
    "poverty_line = poverty_line * (1 + 1e-15)",  # one float a few units in the last place off
    "village = ''",  # a blank made an empty text
    "reasons = reasons || ' '",
])
def test_the_smallest_change_of_a_stored_value_is_named(db, change):
    engine, _rows = _store(db)
    _tamper(engine, f"UPDATE decision SET {change} WHERE household_id = 'h4'")
    database._ENGINES.clear()
    report = integrity.verify(connect(db))
    assert not report.ok and "row 5 of the run (id 5, household h4)" in report.problems[-1], report.problems


def test_a_value_of_another_type_written_outside_the_program_is_named_not_a_crash(db):
    engine, _rows = _store(db)
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL keeps a column's type")
    _tamper(engine, "UPDATE decision SET per_capita_income = 'lots' WHERE household_id = 'h7'")
    database._ENGINES.clear()
    report = integrity.verify(connect(db))
    assert "household h7" in report.problems[-1]
    assert "row 8 of the run (id 8, this household)" in integrity.check_household(connect(db), "h7").problems[-1]


def test_when_the_written_values_are_not_what_the_database_holds_the_run_is_read_back(db):
    def altered(rows: pa.Table) -> pa.Table:  # what a lossy database would do to one value
        values = rows.column("reasons").to_pylist()
        values[3] = values[3] + "!"
        return rows.set_column(rows.column_names.index("reasons"), "reasons", pa.array(values, pa.string()))

    engine, _rows = _store(db, n=20, written=altered)  # (20 rows: every one is in the spot check)
    assert integrity.verify(engine).ok  # sealed from the stored rows (the spot check saw the difference)


def _seal_scheme_1(connection, run_id: int) -> None:
    """What stores sealed before scheme 2 wrote: each row's repr hashed, no "rows" in the table entries."""
    import base64
    import hashlib

    digests = integrity.RunDigest.__table__
    previous = connection.execute(select(digests.c.digest).where(digests.c.run_id < run_id)
                                  .order_by(digests.c.run_id.desc()).limit(1)).scalar() or ""
    tables, hashes = {}, {}
    for table in integrity.run_tables():
        count, row_hashes = integrity._hash_rows(connection, table, run_id)
        tables[table.name] = {"count": count, "sha256": hashlib.sha256(row_hashes).hexdigest()}
        hashes[table.name] = base64.b64encode(row_hashes).decode()
    connection.execute(digests.insert().values(
        run_id=run_id, previous=previous, digest=integrity._digest(previous, integrity._run_record(connection, run_id),
                                                                   tables),
        tables=json.dumps(tables), row_hashes=json.dumps(hashes), sealed_at=dt.datetime.now(dt.UTC)))


def test_a_run_sealed_by_the_earlier_scheme_still_verifies_and_its_changes_are_still_named(db):
    engine = connect(db)
    with Session(engine) as session:
        connection = session.connection()
        run_id = _run(session)
        errors = pd.DataFrame({"run_id": run_id, "row": [2, 3], "household_id": ["h1", None], "column": "x",
                               "value": ["1", "2"], "error": "bad", "file": "f.csv"})
        bulk_insert_table(connection, "runerror", arrow_rows(RunError.__table__, errors, ERROR_FIELDS))
        _seal_scheme_1(connection, run_id)
        session.commit()
    _store(db)  # a second run, sealed now, chained to the first
    report = integrity.verify(engine)
    assert report.ok and report.runs == 2, report.problems
    assert "rows" not in json.loads(session_digests(engine)[0].tables)["runerror"]
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER runerror_append_only ON runerror" if pg else
                                "DROP TRIGGER runerror_no_update"))
        connection.execute(text("UPDATE runerror SET value = '9' WHERE row = 3"))
    database._ENGINES.clear()
    report = integrity.verify(connect(db))
    assert "run 1, table runerror: row 2 of the run" in report.problems[-1], report.problems


def session_digests(engine) -> list[integrity.RunDigest]:
    with Session(engine) as session:
        return list(session.execute(select(integrity.RunDigest).order_by(integrity.RunDigest.run_id)).scalars())


def test_row_hashes_in_bulk_are_those_of_the_rows_one_by_one():
    kinds = ["int", "float", "str", "bool", "other"]
    columns = [[1, None, -5], [0.5, -0.0, None], ["a", None, "引号"], [True, False, None],
               [dt.date(2020, 1, 2), None, dt.datetime(2020, 1, 2, 3, 4, tzinfo=dt.UTC)]]
    together = integrity.row_hashes(kinds, columns)
    one_by_one = b"".join(integrity.row_hashes(kinds, [[c[i]] for c in columns]) for i in range(3))
    assert together == one_by_one and len(together) == 3 * integrity.ROW_HASH_BYTES
    assert len(set(together[i:i + 8] for i in range(0, 24, 8))) == 3
    assert integrity.row_hashes(["float"], [[0.0]]) == integrity.row_hashes(["float"], [[-0.0]])
    assert integrity.row_hashes(["str"], [[""]]) != integrity.row_hashes(["str"], [[None]])
    assert integrity.row_hashes(["str", "str"], [["ab"], [""]]) != integrity.row_hashes(["str", "str"], [["a"], ["b"]])


def test_a_row_changed_together_with_its_row_hash_is_named(db):
    """An attacker who edits a row and writes its new hash into the digest's row hashes: the table's SHA-256 in
    the chained digest no longer matches them."""
    import base64

    engine, _rows = _store(db, n=6)
    pg = engine.dialect.name == "postgresql"
    _tamper(engine, "UPDATE decision SET identification = 'poor' WHERE household_id = 'h4'")
    sealed = session_digest(engine)  # (read before the trigger is dropped: on PostgreSQL DROP TRIGGER locks the
    entry = json.loads(sealed.tables)["decision"]  # table until the transaction ends, and a second read would wait)
    with engine.begin() as connection:
        rows = connection.execute(select(*(Decision.__table__.c[c] for c in entry["columns"]))
                                  .order_by(Decision.id)).all()
        forged = base64.b64encode(integrity._rows_hashes(Decision.__table__, entry["columns"], rows)).decode()
        connection.execute(text("DROP TRIGGER rundigest_append_only ON rundigest" if pg else
                                "DROP TRIGGER rundigest_no_update"))
        hashes = {**json.loads(sealed.row_hashes), "decision": forged}
        connection.execute(text("UPDATE rundigest SET row_hashes = :forged"), {"forged": json.dumps(hashes)})
    database._ENGINES.clear()
    engine = connect(db)
    assert integrity.quick_check(engine).ok  # counts and the chain as stored
    for report in (integrity.verify(engine), integrity.check_household(engine, "h4")):
        assert "run 1, table decision: its stored row hashes were changed" in report.problems[-1], report.problems
