"""Personal data: identity and phone numbers in every written form masked in every output unless the operator
asks; identity numbers checked against GB 11643."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from povertyrules import score
from povertyrules.cli.main import app
from povertyrules.privacy import id_number_problem, mask, mask_text

from .conftest import households

runner = CliRunner()
VALID_ID = "11010519491231002X"  # the standard's own example
VALID_15 = "110105491231002"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("text,masked", [
    ("+8613812345678", "+86138****5678"), ("138-1234-5678", "138****5678"), ("139 1234 5678", "139****5678"),
    ("0086 138 1234 5678", "0086 138****5678"), ("电话13812345678村", "电话138****5678村"),
    ("522301-19900101-1236", "522301********1236"), ("522301 19900101 1236", "522301********1236"),
    (VALID_ID, "110105********002X"), (VALID_ID.lower(), "110105********002x"), (VALID_15, "110105******002"),
    ("户主 11010519491231002X，电话 13912345678", "户主 110105********002X，电话 139****5678"),
    # typed in full-width digits (a Chinese input method): masked whole, the rest of the text as it was
    ("１１０１０５１９４９１２３１００２Ｘ", "110105********002X"), ("１３８－１２３４－５６７８", "138****5678"),
    ("金额７３０８元，身份证５２２３０１１９９００１０１１２３６", "金额７３０８元，身份证522301********1236"),
])
def test_every_common_written_form_is_masked(text, masked):
    assert mask_text(text) == masked
    assert mask({"a": [text]}) == {"a": [masked]}


@pytest.mark.parametrize("text", ["h0001", "2020-05-01", "per-capita income 3000 yuan", "12345678901234567890",
                                  "rules_version 8a3b9c1d2e4f"])
def test_other_text_is_left_alone(text):
    assert mask_text(text) == text


@pytest.mark.parametrize("number,problem", [
    (VALID_ID, None), (VALID_15, None), ("522301199001011236", None), ("522301-19900101-1236", None),
    ("522301199001011230", "check digit"), ("110101199002301234", "birth date"), ("110101299001011236", "birth"),
    ("1101011990010112", "not an identity number"), ("11010119900101123Y", "not an identity number"),
])
def test_identity_numbers_are_checked_against_gb_11643(number, problem):
    found = id_number_problem(number)
    assert (found is None) if problem is None else (problem in found)


@pytest.fixture
def county(tmp_path):
    path = tmp_path / "c.csv"
    households({"household_id": VALID_ID, "village": "联系人13812345678", "householder_id_number": VALID_ID},
               {"household_id": "h2", "householder_id_number": "522301199001011230"},  # bad check digit
               {"household_id": "h3", "net_income": "abc 139-1234-5678"}).to_csv(path, index=False)
    return path


def test_decisions_and_errors_files_are_masked_by_default(county, tmp_path):
    out = tmp_path / "d.csv"
    result = run("score", county, "-o", out)
    assert result.exit_code == 0, result.output
    decisions, errors = (p.read_text(encoding="utf-8-sig") for p in (out, tmp_path / "d.errors.csv"))
    assert VALID_ID not in decisions and "110105********002X" in decisions
    assert "522301199001011230" not in errors and "522301********1230" in errors
    assert "139-1234-5678" not in errors and "139****5678" in errors
    frame = pd.read_csv(tmp_path / "d.errors.csv", dtype=str)
    assert set(frame["列"]) == {"户主身份证号码", "家庭年纯收入"}  # the bad id is an error on its row
    shown = run("--show-identities", "score", county, "-o", tmp_path / "open.csv")
    assert shown.exit_code == 0 and VALID_ID in (tmp_path / "open.csv").read_text(encoding="utf-8-sig")


def test_explain_history_and_errors_printed_are_masked(county, tmp_path):
    db = str(tmp_path / "a.db")
    assert run("score", county, "-o", tmp_path / "d.csv", "--store", "--db", db).exit_code == 0
    for command in (("explain", VALID_ID), ("history", VALID_ID), ("explain", "110101199003071234"), ("runs",)):
        output = run(*command, "--db", db).output
        assert VALID_ID not in output and "110101199003071234" not in output, command
    as_json = run("explain", VALID_ID, "--json", "--db", db).output
    assert VALID_ID not in as_json and "110105********002X" in as_json
    # the store itself never held the number: even --show-identities shows its stored form
    assert "110105********002X#" in run("--show-identities", "explain", VALID_ID, "--json", "--db", db).output


def test_pages_and_exports_mask_every_form(tmp_path):
    from povertyrules.store.database import connect
    from povertyrules.store.runs import record_run
    from povertyrules.web.app import create_app

    db = str(tmp_path / "a.db")
    frame = households({"household_id": "h1", "village": "+8613812345678 / 139 1234 5678 / 522301-19900101-1236"})
    record_run(connect(db), score(frame, keep_records=True), "x.csv")
    client = TestClient(create_app(db))
    for url in ("/?q=h1", "/household/h1", "/api/households/h1"):
        text = client.get(url).text
        for raw in ("13812345678", "1234 5678", "19900101"):
            assert raw not in text, (url, raw)
    export = client.get("/run/1/decisions.xlsx")
    assert export.status_code == 200


def test_event_rejects_are_masked(tmp_path):
    county = tmp_path / "c.csv"
    households({"household_id": "h1"}).to_csv(county, index=False)
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"household_id": VALID_ID, "date": "2020-01-01"}) + "\n", encoding="utf-8")
    result = run("monitor", events, "--households", county, "--db", tmp_path / "a.db")
    assert result.exit_code == 0 and VALID_ID not in result.output
    assert VALID_ID not in (tmp_path / "e.jsonl.rejects.jsonl").read_text(encoding="utf-8")


def test_at_rest_the_store_keeps_a_keyed_hash_and_the_masked_form_not_the_number(county, tmp_path, monkeypatch):
    import os
    import sqlite3

    monkeypatch.delenv("POVERTYRULES_KEY", raising=False)
    db = tmp_path / "a.db"
    assert run("score", county, "-o", tmp_path / "d.csv", "--store", "--db", db).exit_code == 0
    key = tmp_path / "a.db.key"
    assert key.exists() and os.stat(key).st_mode & 0o777 == 0o600
    dump = "\n".join(sqlite3.connect(db).iterdump())
    for raw in (VALID_ID, "13812345678", "139-1234-5678", "522301199001011230"):
        assert raw not in dump, raw
    assert "110105********002X#" in dump
    explained = run("explain", VALID_ID, "--db", db)  # looked up by the number, through its keyed hash
    assert explained.exit_code == 0 and "110105********002X" in explained.output
    assert run("history", VALID_ID, "--db", db).exit_code == 0
    recorded = run("procedure", "record", VALID_ID, "--step", "application", "--actor", "clerk", "--db", db)
    assert recorded.exit_code == 0, recorded.output
    assert VALID_ID not in "\n".join(sqlite3.connect(db).iterdump())

    from povertyrules.store.database import connect
    from povertyrules.web.app import create_app

    found = TestClient(create_app(str(db))).get("/api/households", params={"q": VALID_ID}).json()
    assert found["total"] == 1
    monkeypatch.setenv("POVERTYRULES_KEY", "another key")
    from povertyrules.store import database

    database._KEYS.clear()
    assert run("explain", VALID_ID, "--db", db).exit_code == 1  # without the store's key no look-up by number
    database._KEYS.clear()
    assert connect(str(db))


def test_a_trace_code_that_looks_like_a_phone_number_is_written_as_it_is():
    import pandas as pd

    from povertyrules.privacy import mask_frame

    frame = pd.DataFrame({"household_id": ["a"], "note": ["电话13812345678"], "trace": ["58a14195805458a8"]})
    masked = mask_frame(frame)
    assert masked["trace"].tolist() == ["58a14195805458a8"]  # (its digits 14195805458 are no phone to hide)
    assert masked["note"].tolist() == ["电话138****5678"] and list(masked.columns) == list(frame.columns)


def test_a_number_typed_in_full_width_digits_is_kept_in_the_store_as_its_ascii_form_is():
    """The store's keyed form of an identity number does not depend on the digits it was typed in, so a
    household stored from a file with full-width digits is found by its ordinary number (and the reverse)."""
    from povertyrules.privacy import pseudonym_text

    ascii_form, wide = "身份证 11010519491231002X", "身份证 １１０１０５１９４９１２３１００２Ｘ"
    assert pseudonym_text(wide, b"k") == pseudonym_text(ascii_form, b"k")
    assert "１９４９" not in pseudonym_text(wide, b"k") and "1949" not in pseudonym_text(wide, b"k")


def test_a_trace_code_that_looks_like_a_phone_number_is_stored_as_it_is():
    import pandas as pd

    from povertyrules.privacy import pseudonym_frame

    frame = pd.DataFrame({"household_id": ["a"], "note": ["电话13812345678"], "trace": ["58a14195805458a8"]})
    stored = pseudonym_frame(frame, b"key")
    assert stored["trace"].tolist() == ["58a14195805458a8"]  # still decodable: its digits are no phone
    assert stored["note"].tolist() == ["电话138****5678"] and list(stored.columns) == list(frame.columns)
