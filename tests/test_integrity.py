"""A tamper-evident store: REPLACE refused, and every edit, deletion, dropped trigger or re-created table named
by `store verify` and warned about by every read command (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.store import database
from povertyrules.store.database import connect
from povertyrules.store.integrity import quick_check, verify

from .conftest import households

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def stored(db, tmp_path) -> str:
    """Two runs: h1 not poor, h2 poor."""
    path = tmp_path / "c.csv"
    households({}, {"net_income": "3000", "four_look_score": "40"}, {}).to_csv(path, index=False)
    for _ in range(2):
        result = run("score", path, "-o", tmp_path / "d.csv", "--store", "--db", db)
        assert result.exit_code == 0, result.output
        assert "chain digest" in result.output
    report = verify(connect(db))
    assert report.ok and report.runs == 2, report.problems
    return db


def raw(db: str, *statements: str) -> None:
    """What an attacker with the database file or a database login does, outside the program."""
    engine = connect(db)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def fresh(db: str):
    database._ENGINES.clear()  # a new process: nothing cached
    return connect(db)


def test_an_untouched_store_verifies(stored):
    result = run("store", "verify", "--db", stored)
    assert result.exit_code == 0 and "2 runs verified" in result.output
    assert "WARNING" not in run("runs", "--db", stored).output


def test_insert_or_replace_is_refused_by_the_database(stored):
    engine = connect(stored)
    sqlite = engine.dialect.name == "sqlite"
    forge = ("INSERT OR REPLACE INTO decision SELECT * FROM decision WHERE household_id = 'h1'" if sqlite else
             "INSERT INTO decision SELECT * FROM decision WHERE household_id = 'h1' "
             "ON CONFLICT (id) DO UPDATE SET identification = 'poor'")
    for statement in (forge, "UPDATE decision SET identification = 'poor'", "DELETE FROM decision",
                      "INSERT OR REPLACE INTO run SELECT * FROM run" if sqlite else "TRUNCATE decision CASCADE"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    assert verify(engine).ok


COPY = "INSERT INTO decision SELECT id + 1000, 2, {columns} FROM decision WHERE run_id = 1 AND household_id = 'h2'"


@pytest.mark.parametrize("attack,named,household,counts_kept", [
    (["DROP TRIGGER {decision_update}", "UPDATE decision SET identification = 'poor' WHERE household_id = 'h1' "
      "AND run_id = 1"], "run 1, table decision: row 1 of the run (id 1, household h1)", "h1", True),
    (["DROP TRIGGER {decision_delete}", "DELETE FROM decision WHERE run_id = 2"], "run 2: decision has 0 rows",
     "h1", False),
    (["DROP TRIGGER {run_update}", "UPDATE run SET operator = 'someone else' WHERE id = 1"],
     "run 1: its record", "h1", False),
    (["DROP TRIGGER {decision_delete}", "DELETE FROM decision WHERE run_id = 2 AND household_id = 'h2'", COPY],
     "run 2, table decision: row 2 of the run", "h2", True),
])
def test_tampering_is_named_by_verify_and_warned_by_read_commands(stored, attack, named, household, counts_kept):
    engine = connect(stored)
    pg = engine.dialect.name == "postgresql"
    names = {k: (f"{k.rsplit('_', 1)[0]}_append_only ON {k.rsplit('_', 1)[0]}" if pg else
                 f"{k.rsplit('_', 1)[0]}_no_{k.rsplit('_', 1)[1]}")
             for k in ("decision_update", "decision_delete", "run_update")}
    columns = ", ".join(f'"{c}"' for c in _decision_columns(engine)[2:])
    raw(stored, *(s.format(**names, columns=columns) for s in attack))
    engine = fresh(stored)  # the next command (its connect also puts the dropped trigger back)
    result = run("store", "verify", "--db", stored)
    assert result.exit_code == 1
    assert named in result.output.replace("\n", ""), result.output
    # a row edited in place is seen by the commands that show its household; counts and the chain by all
    commands = [("explain", household), ("history", household)]
    if not counts_kept:
        commands += [("runs",), ("alerts",), ("procedure", "show", household), ("diff", "1", "2")]
    for command in commands:
        shown = run(*command, "--db", stored)
        assert "WARNING: the audit store fails verification" in shown.output, (command, shown.output)
    assert quick_check(engine).ok == counts_kept


def _decision_columns(engine) -> list[str]:
    from sqlalchemy import inspect

    return [c["name"] for c in inspect(engine).get_columns("decision")]


def test_a_dropped_and_recreated_table_is_named(stored):
    engine = connect(stored)
    statements = ["DROP TABLE decision"] if engine.dialect.name == "sqlite" else ["DROP TABLE decision CASCADE"]
    raw(stored, *statements)
    fresh(stored)  # re-creates the table, empty
    result = run("store", "verify", "--db", stored)
    assert result.exit_code == 1 and "run 1: decision has 0 rows" in result.output.replace("\n", "")
    assert "WARNING" in run("runs", "--db", stored).output


def test_a_deleted_digest_breaks_the_chain(stored):
    engine = connect(stored)
    drop = ("DROP TRIGGER rundigest_no_delete" if engine.dialect.name == "sqlite" else
            "DROP TRIGGER rundigest_append_only ON rundigest")
    raw(stored, drop, "DELETE FROM rundigest WHERE run_id = 1")
    report = quick_check(fresh(stored))
    assert not report.ok and "run 1: no digest" in report.problems[0]


def test_a_missing_trigger_is_reported_until_it_is_back(stored, tmp_path: Path):
    engine = connect(stored)
    if engine.dialect.name != "sqlite":
        pytest.skip("on PostgreSQL every connect re-installs the triggers")
    raw(stored, "DROP TRIGGER decision_no_update")
    assert "decision_no_update" in quick_check(engine).problems[0]
    assert quick_check(fresh(stored)).ok  # the next connect put it back; no row changed


def test_the_inspector_pages_warn_when_the_store_fails_verification(stored):
    from fastapi.testclient import TestClient

    from povertyrules.web.app import create_app

    engine = connect(stored)
    drop = ("DROP TRIGGER decision_no_update" if engine.dialect.name == "sqlite" else
            "DROP TRIGGER decision_append_only ON decision")
    raw(stored, drop, "UPDATE decision SET identification = 'poor' WHERE household_id = 'h1' AND run_id = 2")
    fresh(stored)
    client = TestClient(create_app(stored))
    page = client.get("/household/h1")
    assert "审计库校验失败" in page.text and "run 2, table decision" in page.text
    assert client.get("/api/households/h1").json()["store_problems"]
    assert "审计库校验失败" not in client.get("/household/h3").text
