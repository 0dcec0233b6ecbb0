"""Access beyond loopback needs a user of the store; every page and API read is logged (查询留痕), append-only."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from povertyrules import score
from povertyrules.cli.main import app
from povertyrules.store.access import access_log, add_user, check_password, hash_password
from povertyrules.store.database import connect
from povertyrules.store.runs import record_run
from povertyrules.web.app import create_app, is_loopback

from .conftest import households

runner = CliRunner()


@pytest.fixture
def store(tmp_path) -> str:
    db = str(tmp_path / "a.db")
    record_run(connect(db), score(households({}, {}), keep_records=True), "x.csv")
    return db


def basic(name: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def test_passwords_are_kept_as_salted_scrypt_hashes():
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and stored.startswith("scrypt$")
    assert check_password("correct horse", stored) and not check_password("wrong horse", stored)
    assert hash_password("correct horse") != stored  # salted


def test_serving_beyond_loopback_without_users_is_refused(store):
    result = runner.invoke(app, ["serve", "--db", store, "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "users add" in result.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("inspector.county")


def test_users_are_added_by_the_cli_and_kept_hashed(store):
    result = runner.invoke(app, ["users", "add", "wang", "--db", store], input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    with connect(store).begin() as connection:
        stored = connection.execute(text("SELECT password_hash FROM webuser WHERE name = 'wang'")).scalar()
    assert "s3cret-pass" not in stored and check_password("s3cret-pass", stored)
    again = runner.invoke(app, ["users", "add", "wang", "--db", store, "--password", "another-pass"])
    assert again.exit_code == 2 and "exists" in again.output


def test_beyond_loopback_every_request_needs_a_login(store):
    add_user(connect(store), "li", "pass-word-1")
    client = TestClient(create_app(store, require_login=True))
    for url in ("/", "/household/h1", "/api/households/h1", "/api/runs", "/openapi.json", "/run/1/decisions.xlsx"):
        refused = client.get(url)
        assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"], url
        assert client.get(url, headers=basic("li", "wrong")).status_code == 401
        assert client.get(url, headers=basic("nobody", "pass-word-1")).status_code == 401
        assert client.get(url, headers=basic("li", "pass-word-1")).status_code == 200, url


def test_every_read_is_logged_with_who_when_and_which_household(store):
    add_user(connect(store), "li", "pass-word-1")
    client = TestClient(create_app(store, require_login=True))
    client.get("/household/h2", headers=basic("li", "pass-word-1"))
    client.get("/api/households/h1", headers=basic("li", "pass-word-1"))
    client.get("/?q=h", headers=basic("li", "pass-word-1"))
    client.get("/household/h1")  # refused, and logged as such
    entries = list(reversed(access_log(connect(store))))
    assert [(e.user, e.household_id, e.status) for e in entries] == [
        ("li", "h2", 200), ("li", "h1", 200), ("li", None, 200), ("(refused)", None, 401)]
    assert entries[2].path == "/?q=h" and all(e.at for e in entries)
    shown = runner.invoke(app, ["access-log", "--db", store, "--household", "h2"])
    assert shown.exit_code == 0 and "li" in shown.output and "/household/h2" in shown.output
    with pytest.raises(DatabaseError, match="append-only"), connect(store).begin() as connection:
        connection.execute(text("DELETE FROM accesslog"))


def test_an_identity_number_read_or_searched_for_is_not_kept_in_the_access_log(tmp_path):
    import re

    from povertyrules.datasets.layouts import valid_id

    number = valid_id("11010519491231002")
    db = str(tmp_path / "a.db")
    record_run(connect(db), score(households({"household_id": number}, {}), keep_records=True), "x.csv")
    client = TestClient(create_app(db))
    assert client.get(f"/household/{number}").status_code == 200
    answer = client.get(f"/api/households?q={number}").json()
    assert number not in str(answer) and answer["total"] == 1  # found, and not echoed back either
    with connect(db).connect() as connection:
        rows = [tuple(r) for r in connection.execute(text("SELECT path, household_id FROM accesslog"))]
    assert len(rows) == 2 and not re.search(r"\d{15,}", str(rows)), rows
    shown = runner.invoke(app, ["access-log", "--db", db, "--household", number])
    assert shown.exit_code == 0 and shown.output.count("/household/") == 1  # still found by the number


def test_on_loopback_reads_are_logged_as_local(store):
    client = TestClient(create_app(store))
    assert client.get("/household/h1").status_code == 200
    assert [(e.user, e.household_id) for e in access_log(connect(store))] == [("local", "h1")]


def test_concurrent_reads_share_commits_and_every_one_is_logged_before_it_is_answered(store):
    """The server's read log commits the reads that arrive together in one transaction; a read's future is
    done only after its entry is in the store."""
    import threading

    from povertyrules.store.access import ReadLog

    engine = connect(store)
    before = len(access_log(engine, limit=100_000))
    reads = ReadLog(engine)
    seen: list[bool] = []

    def reader(k: int) -> None:
        reads.log("local", "127.0.0.1", "GET", f"/household/h{k}", f"h{k}", 200).result(timeout=30)
        seen.append(any(e.household_id == f"h{k}" for e in access_log(engine, household_id=f"h{k}")))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(120)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [True] * 120
    assert len(access_log(engine, limit=100_000)) == before + 120


def test_a_read_that_cannot_be_logged_is_not_answered(store, tmp_path):
    """If the log cannot be written (here: the table is gone), the waiting read gets the error."""
    from povertyrules.store.access import ReadLog

    engine = connect(store)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE accesslog"))
    with pytest.raises(DatabaseError):
        ReadLog(engine).log("local", None, "GET", "/", None, 200).result(timeout=30)
