"""The decision row's stored format: input rows as JSON arrays and reasons as positions in the run's codebook
(`povertyrules.store.rows`), read back as objects and text by every reader; runs stored the earlier way (input
rows as JSON objects, reasons as text, no codebook) still read, explain, export and verify."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes
from sqlalchemy import select, text
from sqlmodel import Session

from povertyrules import load_rules, score
from povertyrules.store import database, integrity
from povertyrules.store.database import connect, store_key_of
from povertyrules.store.models import Decision, Run
from povertyrules.store.rows import input_frame, input_records, json_arrays, json_records, make_codebook
from povertyrules.store.runs import (
    append_rows,
    decision_chunks,
    decision_of,
    decisions_frame,
    get_run,
    new_run,
    reasons_of,
    record_run,
)

from .conftest import JSON_TEXT, households, json_expected

ID_NUMBER = "522301199001011236"  # a valid identity number: stored masked + keyed hash, never as it is


@settings(max_examples=60, deadline=None)
@given(data_frames([column("f", elements=st.floats(allow_nan=True, allow_infinity=True), dtype=float),
                    column("i", elements=st.integers(-2**53, 2**53), dtype="int64"),
                    column("b", elements=st.sampled_from([True, False, None]), dtype=object),
                    column("s", elements=st.one_of(st.none(), JSON_TEXT, st.sampled_from(["村", "引号\"", "a\\b"])),
                           dtype=object),
                    column("键 \"q\"", elements=st.one_of(st.none(), st.sampled_from(["示范县", "\x01", ""])),
                           dtype=object)],
                   index=range_indexes(max_size=30)))
def test_a_row_as_a_json_array_reads_back_as_the_object_it_replaces(frame):
    frame["b"] = frame["b"].astype("boolean")
    frame["c"] = frame["s"].astype("category")
    frame["w"] = frame["f"].round()  # (whole numbers: written as integers and ".0")
    arrays, objects = json_arrays(frame).to_pylist(), json_records(frame).to_pylist()
    codebook = {"inputs": list(frame.columns)}
    records = input_records(codebook, arrays)
    assert records == [json.loads(o) for o in objects] == input_records(None, objects)
    for record, (_, row) in zip(records, frame.iterrows(), strict=True):
        for name in frame.columns:
            assert record[name] == json_expected(row[name]), (name, row[name])
            if name in ("f", "w") and record[name] is not None:
                assert isinstance(record[name], float) and math.copysign(1, record[name]) == math.copysign(
                    1, row[name])  # 4.0 not 4, −0.0 not 0
    if len(frame):
        assert input_frame(codebook, arrays).equals(input_frame(None, objects))


def test_floats_are_written_as_json_writes_them():
    values = [0.0, -0.0, 4.0, -3.0, 1e15, 1e16, 1e17, 0.1 + 0.2, 5e-324, 123456.789, 1.7976931348623157e308,
              9999999999999998.0, -1e-7, 2.5, float("nan"), float("inf")]
    written = [json.loads(v)[0] for v in json_arrays(pd.DataFrame({"x": values})).to_pylist()]
    assert [repr(v) for v in written] == [repr(v) for v in values[:-2]] + ["None", "None"]


def test_a_run_with_too_many_different_reasons_keeps_them_as_text(monkeypatch):
    import pyarrow as pa

    from povertyrules.store import rows

    monkeypatch.setattr(rows, "MAX_REASONS", 2)
    book, coded = make_codebook(["a"], pa.array(["x", "y", "z"]))
    assert "reasons" not in book and coded.to_pylist() == ["x", "y", "z"]
    book, coded = make_codebook(["a"], pa.array(["x", "y", "x", None]))
    assert book["reasons"] == ["x", "y"] and coded.to_pylist() == ["0", "1", "0", None]


@pytest.fixture(scope="module")
def scored():
    frame = households({"household_id": ID_NUMBER, "net_income": "6000", "four_look_score": "40",
                        "village": "上\u2028村 \"引号\""},
                       {"household_id": "car1", "net_income": "6000", "four_look_score": "40", "ex_vehicle": "是"},
                       {"household_id": "rich1", "net_income": "60000", "village": None},
                       {"household_id": "blank1", "four_look_score": None})
    return score(frame, rules=load_rules(), keep_records=True)


def _raw(engine, run_id: int) -> list:
    with engine.connect() as connection:
        return connection.execute(select(Decision.household_id, Decision.inputs, Decision.reasons)
                                  .where(Decision.run_id == run_id).order_by(Decision.id)).all()


def _store_the_earlier_way(engine, result) -> int:
    """A run as stores kept them before codebooks (and as runs written in parts keep them): no codebook, each
    input row a JSON object, each reason its text."""
    with Session(engine) as session:
        run = new_run(result.book, "old.csv", [2020], decided=len(result.decisions), error_rows=0,
                      input_rows=len(result.decisions))
        session.add(run)
        session.flush()
        connection = session.connection()
        append_rows(connection, int(run.id), result, store_key_of(engine))
        integrity.seal(connection, int(run.id))  # (read back, as a run written in parts is)
        session.commit()
        return int(run.id)


def test_rows_are_stored_compactly_and_every_reader_sees_objects_and_text(db, scored):
    engine = connect(db)
    run_id = record_run(engine, scored, "in.csv")
    run = get_run(engine, run_id)
    codebook = json.loads(run.codebook)
    assert codebook["inputs"] == [c for c in scored.inputs.columns if c != "row"]
    raw = _raw(engine, run_id)
    assert all(inputs.startswith("[") and reasons.isdigit() for _, inputs, reasons in raw)
    assert ID_NUMBER not in repr(raw) + run.codebook  # masked at rest, in the rows and in the codebook
    masked = raw[0][0]
    assert masked != ID_NUMBER and masked.startswith("522301")

    stored = decision_of(engine, ID_NUMBER)
    record = json.loads(stored.inputs)
    assert record["household_id"] == masked and record["village"] == "上\u2028村 \"引号\""
    assert record["members"] == float(scored.inputs["members"].iloc[0]) and isinstance(record["members"], float)
    assert json.loads(decision_of(engine, "blank1").inputs)["four_look_score"] is None
    assert json.loads(decision_of(engine, "rich1").inputs)["village"] is None
    expected = dict(zip(scored.decisions["household_id"], scored.decisions["reasons"], strict=True))
    assert stored.reasons == expected[ID_NUMBER] and decision_of(engine, "car1").reasons == expected["car1"]
    frame = decisions_frame(engine, run_id)
    assert dict(zip(frame["household_id"], frame["reasons"], strict=True))["car1"] == expected["car1"]
    assert list(next(decision_chunks(engine, run_id, fields=["household_id", "reasons"]))["reasons"]) == list(
        frame["reasons"])
    assert reasons_of(engine, "car1", run_id) and integrity.verify(engine).ok


def test_a_run_stored_the_earlier_way_still_reads_explains_and_verifies(db, scored):
    engine = connect(db)
    old = _store_the_earlier_way(engine, scored)
    new = record_run(engine, scored, "in.csv")
    assert get_run(engine, old).codebook is None
    assert all(inputs.startswith("{") for _, inputs, _ in _raw(engine, old))
    for run_id in (old, new):
        decision = decision_of(engine, "car1", run_id)
        assert json.loads(decision.inputs)["ex_vehicle"] is True and decision.identification == "excluded"
        assert decisions_frame(engine, run_id)["reasons"].tolist() == scored.decisions["reasons"].tolist()
        assert [r.rule_id for r in reasons_of(engine, "car1", run_id)]
    assert [r.rule_id for r in reasons_of(engine, "car1", old)] == [r.rule_id for r in reasons_of(engine, "car1", new)]
    assert integrity.verify(engine).ok and integrity.check_household(engine, "car1").ok


def test_the_record_of_a_run_without_a_codebook_hashes_as_before_it_existed(db, scored):
    engine = connect(db)
    old = _store_the_earlier_way(engine, scored)
    run = Run.__table__
    with engine.connect() as connection:
        row = connection.execute(select(run).where(run.c.id == old)).first()
        before = integrity._canonical(tuple(v for c, v in zip(run.columns, row, strict=True) if c.name != "codebook"))
        assert integrity._run_record(connection, old) == before


def test_a_changed_codebook_is_named_by_every_check(db, scored):
    engine = connect(db)
    run_id = record_run(engine, scored, "in.csv")
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER run_append_only ON run" if pg else "DROP TRIGGER run_no_update"))
        connection.execute(text("UPDATE run SET codebook = replace(codebook, '不', '') WHERE id = :r"), {"r": run_id})
    database._ENGINES.clear()
    engine = connect(db)
    for report in (integrity.quick_check(engine), integrity.verify(engine), integrity.check_household(engine, "car1")):
        assert f"run {run_id}: its record" in report.problems[-1], report.problems


def test_hashes_made_on_the_way_are_used_only_for_the_ids_they_were_made_with(db, scored, monkeypatch):
    engine = connect(db)
    record_run(engine, scored, "in.csv")
    made = []
    real = integrity._written_hashes

    def spy(connection, table, run_id, rows, given=None):
        made.append((table.name, given))
        return real(connection, table, run_id, rows, given)

    monkeypatch.setattr(integrity, "_written_hashes", spy)
    record_run(engine, scored, "in.csv")
    given = dict(made)["decision"]
    if engine.dialect.name == "sqlite":  # (the ids the rows got are known beforehand)
        assert given is not None and given[0] == len(scored.decisions) + 1
    else:
        assert given is None
    wrong = real  # hashes made for other ids than the rows got are not used: the run still verifies

    def shifted(connection, table, run_id, rows, given=None):
        return wrong(connection, table, run_id, rows, None if given is None else (given[0] + 1, given[1]))

    monkeypatch.setattr(integrity, "_written_hashes", shifted)
    record_run(engine, scored, "in.csv")
    assert integrity.verify(engine).ok


def test_an_arrow_backed_text_column_is_written_as_a_python_text_column_is():
    import json

    import pyarrow as pa

    from povertyrules.store.rows import json_records

    texts = ["甲村", "乙村", None, "甲村"] * 5  # few distinct places: the dictionary-encoded path
    plain = pd.DataFrame({"village": pd.Series(texts, dtype=object)})
    chunked = pa.chunked_array([texts[:7], texts[7:]], pa.string())  # as Arrow's readers give text, in chunks
    arrow = pd.DataFrame({"village": pd.Series(pd.arrays.ArrowExtensionArray(chunked))})
    assert json_records(arrow).to_pylist() == json_records(plain).to_pylist()
    assert [json.loads(r)["village"] for r in json_records(arrow).to_pylist()] == texts
