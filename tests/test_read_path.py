"""The read path: a household's rows found by index in every table, indexes added to stores made before them,
one row hashed as the bulk hash does it, and a one-row evaluation taken lazily with the same values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

from povertyrules import load_rules
from povertyrules.engines.vectorized import evaluate
from povertyrules.store import database
from povertyrules.store.database import connect
from povertyrules.store.integrity import _one_row_form, check_household, row_hashes

from .conftest import households

#: the tables a household page reads a household's rows from (its integrity check, evidence, contradictions)
HOUSEHOLD_INDEXES = {"runerror": "ix_runerror_household_run", "evidence": "ix_evidence_household_run",
                     "contradiction": "ix_contradiction_household_run"}


def _indexes(engine, table: str) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes(table)}


def _reopen(db: str):
    """The store opened as a new process would open it (no engine kept from before)."""
    url = database.database_url(db)
    old = database._ENGINES.pop(url, None)
    if old is not None:
        old.dispose()
    return connect(db)


def test_a_store_made_before_the_household_indexes_gets_them_when_opened(db):
    engine = connect(db)
    with engine.begin() as connection:
        for index in HOUSEHOLD_INDEXES.values():
            connection.execute(text(f"DROP INDEX {index}"))
    for table, index in HOUSEHOLD_INDEXES.items():
        assert index not in _indexes(engine, table)
    engine = _reopen(db)
    for table, index in HOUSEHOLD_INDEXES.items():
        assert index in _indexes(engine, table), table


def test_opening_a_complete_sqlite_store_changes_nothing(tmp_path):
    db = str(tmp_path / "audit.db")
    connect(db)
    with connect(db).connect() as connection:
        before = connection.execute(text("PRAGMA schema_version")).scalar()
    engine = _reopen(db)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA schema_version")).scalar() == before


def test_a_read_only_command_on_a_missing_store_still_creates_no_file(tmp_path):
    missing = tmp_path / "none.db"
    with pytest.raises(database.MissingStore):
        connect(str(missing), must_exist=True)
    assert not missing.exists()


@pytest.mark.parametrize("table", ["decision", *HOUSEHOLD_INDEXES])
def test_a_households_rows_are_found_by_index_not_by_scanning_the_table(tmp_path, table):
    """The integrity check's query of each table (the household's rows in every run, in run and id order) and
    the page's evidence and contradiction queries search an index on the household."""
    engine = connect(str(tmp_path / "audit.db"))
    queries = [f"SELECT * FROM {table} WHERE household_id = 'h1' ORDER BY run_id, id"]
    if table in ("evidence", "contradiction"):
        queries.append(f"SELECT * FROM {table} WHERE run_id = 1 AND household_id = 'h1' ORDER BY id")
    with engine.connect() as connection:
        for query in queries:
            plan = " | ".join(row[-1] for row in connection.execute(text(f"EXPLAIN QUERY PLAN {query}")))
            assert "SEARCH" in plan and "household" in plan and "TEMP B-TREE" not in plan, (query, plan)


def test_the_household_check_names_an_edited_row_of_its_household(tmp_path):
    """(The one-row hash is the check: an edit made past the triggers is found.)"""
    from povertyrules import score
    from povertyrules.store.runs import record_run

    db = str(tmp_path / "audit.db")
    engine = connect(db)
    result = score(households({}, {"net_income": "3000", "four_look_score": "40"}), keep_records=True)
    record_run(engine, result, "c.csv")
    assert check_household(engine, "h1").ok and check_household(engine, "h2").ok
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER decision_no_update"))
        connection.execute(text("UPDATE decision SET per_capita_income = 1 WHERE household_id = 'h2'"))
        connection.execute(text("CREATE TRIGGER decision_no_update BEFORE UPDATE ON decision "
                                "BEGIN SELECT RAISE(ABORT, 'the audit store is append-only: decision'); END"))
    assert check_household(engine, "h1").ok
    problems = check_household(engine, "h2").problems
    assert problems and "this household" in problems[0]


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.just("") | st.sampled_from(["识别为贫困户", "否"])
_VALUES = {
    "int": st.none() | st.integers(-2**63, 2**63 - 1) | st.integers(2**63, 2**64) | st.booleans()
    | st.floats(allow_nan=False) | _TEXT,
    "float": st.none() | st.floats() | st.just(-0.0) | st.integers(-2**60, 2**60) | st.booleans() | _TEXT,
    "bool": st.none() | st.booleans() | st.integers(0, 2) | _TEXT,
    "str": st.none() | _TEXT | st.text(max_size=4) | st.integers(-5, 5) | st.floats(allow_nan=False),
    "other": st.none() | _TEXT | st.integers(-5, 5),
}


@st.composite
def _row(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(_VALUES)), min_size=1, max_size=8))
    return kinds, [draw(_VALUES[k]) for k in kinds]


@settings(max_examples=400, deadline=None)
@given(_row())
def test_one_row_is_hashed_exactly_as_the_bulk_hash_hashes_it(row):
    import hashlib

    kinds, values = row
    form = _one_row_form(kinds, values)
    try:
        bulk = row_hashes(kinds, [[v] for v in values])
    except Exception:  # (a value the bulk form cannot take: the one-row form must leave it to the bulk form)
        assert form is None
        return
    if form is not None:
        assert hashlib.sha256(form).digest()[:8] == bulk, (kinds, values)
    plain = all(v is None or (k == "int" and type(v) is int and -2**63 <= v < 2**63)
                or (k == "float" and type(v) is float) or (k == "bool" and type(v) is bool)
                or (k == "str" and type(v) is str) or (k == "other" and isinstance(v, str | int))
                for k, v in zip(kinds, values, strict=True))
    if plain and not any(isinstance(v, str) and _surrogate(v) for v in values):
        assert form is not None  # (the fast form is used for every plainly typed row)


def _surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def test_a_taken_evaluation_has_the_values_of_the_rows_it_took():
    book = load_rules()
    frame = households({}, {"net_income": "3000", "four_look_score": "40"}, {"ex_vehicle": ""},
                       {"net_income": "", "four_look_score": "70"})
    whole = evaluate(book, frame)
    names = [*whole.env, *whole.conditions]
    for rows in (slice(1, 2), slice(0, 4), np.array([3, 0, 2])):
        taken = whole.take(rows)
        expected = np.arange(whole.n)[rows]
        assert taken.n == len(expected)
        assert set(taken.env) == set(whole.env) and len(taken.env) == len(whole.env)
        for name in names:
            got, want = taken.value(name), whole.value(name)
            assert np.array_equal(np.asarray(got.known), np.asarray(want.known)[expected]), name
            values, known = np.asarray(got.values), np.asarray(want.known)[expected]
            want_values = np.asarray(want.values)[expected]
            for a, b, k in zip(values, want_values, known, strict=True):
                if k:
                    assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), name
        for decision in whole.codes:
            assert list(taken.outcome(decision)) == list(whole.outcome(decision)[expected])
        again = taken.take(slice(0, 1))  # (a taken evaluation taken again)
        assert list(again.outcome("identification")) == [whole.outcome("identification")[expected[0]]]


def test_a_served_store_has_its_latest_rule_set_and_one_explanation_ready_before_the_first_reader(tmp_path):
    from fastapi.testclient import TestClient

    from povertyrules import score
    from povertyrules.store import explain
    from povertyrules.store.runs import get_run, record_run
    from povertyrules.web.app import create_app
    db = str(tmp_path / "audit.db")
    connect(db)
    assert TestClient(create_app(db)).get("/").status_code == 200  # (an empty store: nothing to prepare)
    record_run(connect(db), score(households({}, {"net_income": "3000"}), keep_records=True), "c.csv")
    explain._BOOKS.clear()
    app = create_app(db)
    assert get_run(connect(db), 1).rules_version in explain._BOOKS
    assert len(_explainer_of(app).cache) == 1  # (the run's first decision explained)
    page = TestClient(app).get("/household/h1")
    assert page.status_code == 200 and "h1" in page.text


def _explainer_of(app):
    """The app's own `Explainer`, found through the closures of its household page."""
    from povertyrules.web.batching import Explainer

    seen, todo = set(), [r.endpoint for r in app.routes if getattr(r, "name", "") == "page_household"]
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        if isinstance(getattr(f, "__self__", None), Explainer):
            return f.__self__
        todo += [c.cell_contents for c in getattr(f, "__closure__", None) or () if callable(c.cell_contents)]
    raise AssertionError("no explainer")
