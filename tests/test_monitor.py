"""Event-driven monitoring (MON-3, MON-5.1): events, rejects with line numbers, alerts, confirmation, --follow."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from povertyrules.cli.main import app

from .conftest import SAMPLE, households

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def county(tmp_path) -> Path:
    """Households scored for 2020: an exited household with income 10,000 last year … see each test."""
    frame = households(
        {"household_id": "sick", "registered_status": "exited", "net_income": "20000", "able_bodied": "2"},
        {"household_id": "lonely", "registered_status": "exited", "net_income": "20000", "able_bodied": "1"},
        {"household_id": "worker", "registered_status": "none", "net_income": "30000", "able_bodied": "2"},
    )
    path = tmp_path / "county.csv"
    frame.to_csv(path, index=False)
    return path


def write_events(path: Path, events: list[dict | str]) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)) + "\n" for e in events),
                    encoding="utf-8")
    return path


def event(household: str, date: str, kind: str, amount=None, source="health") -> dict:
    return {"household_id": household, "date": date, "source": source, "kind": kind, "amount": amount, "note": ""}


def test_cumulative_rigid_expenditure_raises_one_alert_when_it_passes_last_years_income(db, county, tmp_path):
    score = run("score", county, "-o", tmp_path / "d.csv", "--store", "--db", db)
    assert score.exit_code == 0, score.output
    events = write_events(tmp_path / "e.jsonl", [
        event("sick", "2020-03-01", "medical_expense", 12000),
        event("sick", "2020-06-01", "medical_expense", 9000),   # 21,000 > last year's 19,000 (with the 0 in the row)
        event("sick", "2020-07-01", "medical_expense", 5000),   # already raised: no second alert
    ])
    result = run("monitor", events, "--db", db)
    assert result.exit_code == 0, result.output
    assert "processed 3 + rejected 0" in result.output and "alerts raised 1" in result.output
    listed = run("alerts", "--db", db)
    assert "sick" in listed.output and "rigid_expenditure_hi" in listed.output and "MON-2" in listed.output
    from povertyrules.monitor.alerts import list_alerts
    from povertyrules.store.database import connect

    (alert, decision), = list_alerts(connect(db))
    assert alert.event_line == 2 and alert.trigger == "rigid_expenditure_high" and decision is None
    assert set(alert.clauses.split(",")) >= {"MON-2", "MON-5.1", "MON-3"}
    assert json.loads(alert.observed) == {"rigid_expenditure": 21000, "rigid_expenditure_ratio": 1,
                                          "net_income_last_year": 19000}


def test_a_sharp_drop_and_a_disability_with_no_labour_left_raise_alerts(county, tmp_path):
    db = str(tmp_path / "a.db")
    events = write_events(tmp_path / "e.jsonl", [
        event("worker", "2020-05-01", "income_report", 9000, "self_report"),   # 19,000 → 9,000: a sharp drop
        event("lonely", "2020-05-02", "disability_certified", None, "disabled_persons_federation"),
        event("sick", "2020-05-03", "disability_certified", None, "disabled_persons_federation"),  # one of two
    ])
    result = run("monitor", events, "--households", county, "--db", db)
    assert result.exit_code == 0, result.output
    assert "worker income_dropped" in result.output and "lonely no_labour_capacity_left" in result.output
    assert "sick no_labour" not in result.output
    assert "alerts raised 3" in result.output  # the drop also brings worker under the monitoring line


def test_bad_events_are_rejected_with_their_line_numbers_and_none_are_lost(county, tmp_path):
    db = str(tmp_path / "a.db")
    events = write_events(tmp_path / "e.jsonl", [
        event("sick", "2020-03-01", "medical_expense", 100),
        event("ghost", "2020-03-01", "medical_expense", 100),
        event("sick", "2020-02-30", "medical_expense", 100),
        event("sick", "2020-03-01", "medical_expense", -5),
        "{not json",
        event("sick", "2020-03-01", "lottery_win", 100),
        event("sick", "2020-03-01", "medical_expense", None),
    ])
    result = run("monitor", events, "--households", county, "--db", db)
    assert result.exit_code == 0, result.output
    assert "events read 7 = processed 1 + rejected 6" in result.output
    rejects = [json.loads(line) for line in (tmp_path / "e.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    reasons = " ".join(r["reason"] for r in rejects)
    for text in ("unknown household ghost", "bad date", "negative amount", "not a JSON object", "unknown kind",
                 "needs an amount"):
        assert text in reasons


def test_csv_events_work_too(county, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("household_id,date,source,kind,amount,note\nsick,2020-04-01,health,medical_expense,25000,住院\n"
                    "sick,2020-04-01,health,medical_expense,abc,\n", encoding="utf-8")
    result = run("monitor", path, "--households", county, "--db", str(tmp_path / "a.db"))
    assert "processed 1 + rejected 1" in result.output and "rigid_expenditure_high" in result.output
    rejects = (tmp_path / "e.csv.rejects.jsonl").read_text()
    assert '"line": 3' in rejects and "not a number" in rejects


def test_the_county_confirms_or_rejects_an_alert_and_the_procedure_is_recorded(db, county, tmp_path):
    assert run("score", county, "-o", tmp_path / "d.csv", "--store", "--db", db).exit_code == 0
    events = write_events(tmp_path / "e.jsonl", [
        event("sick", "2020-03-01", "medical_expense", 30000),
        event("worker", "2020-03-02", "income_report", 5000, "cadre_visit"),
    ])
    assert run("monitor", events, "--db", db).exit_code == 0
    pending = run("alerts", "--pending", "--db", db).output
    assert "sick" in pending and "worker" in pending
    confirmed = run("confirm", "1", "--actor", "县扶贫办", "--db", db)
    assert confirmed.exit_code == 0 and "confirmed as a monitoring object" in confirmed.output
    again = run("confirm", "1", "--actor", "县扶贫办", "--db", db)
    assert again.exit_code == 2 and "already decided" in again.output
    assert "rejected" in run("confirm", "2", "--actor", "县扶贫办", "--reject", "--db", db).output
    from povertyrules import load_rules
    from povertyrules.store.database import connect
    from povertyrules.store.procedures import state

    steps = state(connect(db), load_rules(), "sick", "monitoring")
    assert [(s.step, s.note) for s in steps.steps] == [("source", "department_screening"),
                                                       ("county_confirmation", "alert 1")]
    assert steps.next_step == "system_entry"  # entry into the national system is recorded when it is done
    assert state(connect(db), load_rules(), "worker", "monitoring").steps == []  # the rejected alert
    assert "sick" not in run("alerts", "--pending", "--db", db).output


def test_follow_keeps_reading_a_growing_file(county, tmp_path):
    path = write_events(tmp_path / "e.jsonl", [event("sick", "2020-03-01", "medical_expense", 100)])

    def append_later() -> None:
        time.sleep(0.8)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event("sick", "2020-04-01", "medical_expense", 30000)) + "\n")

    writer = threading.Thread(target=append_later)
    writer.start()
    result = run("monitor", path, "--households", county, "--db", str(tmp_path / "a.db"), "--follow",
                 "--idle-seconds", "2")
    writer.join()
    assert result.exit_code == 0, result.output
    assert "processed 2 + rejected 0" in result.output and "rigid_expenditure_high" in result.output


def test_events_drawn_from_the_synthetic_county_produce_alerts_with_cited_clauses(tmp_path):
    db = str(tmp_path / "a.db")
    assert run("score", SAMPLE, "-o", tmp_path / "d.csv", "--store", "--db", db).exit_code == 0
    events = tmp_path / "e.jsonl"
    made = run("datasets", "events", SAMPLE, "-o", events, "--count", "500", "--seed", "3", "--year", "2020")
    assert made.exit_code == 0
    result = run("monitor", events, "--db", db)
    assert result.exit_code == 0
    line = next(x for x in result.output.splitlines() if x.startswith("events read"))
    read, processed, rejected = (int(w) for w in __import__("re").findall(r"\d+", line)[:3])
    assert read == 500 == processed + rejected and rejected > 0
    from povertyrules.monitor.alerts import list_alerts
    from povertyrules.store.database import connect

    alerts = list_alerts(connect(db))
    assert len(alerts) > 10
    assert all("MON-5.1" in a.clauses for a, _ in alerts)


def test_events_in_a_year_with_no_line_stop_the_monitor_with_a_message_not_silence(county, tmp_path):
    db = str(tmp_path / "a.db")
    events = write_events(tmp_path / "e.jsonl", [
        event("worker", "2020-05-01", "income_report", 9000, "self_report"),
        event("worker", "2021-05-01", "income_report", 1000, "self_report"),  # 2021: no national line
    ])
    result = run("monitor", events, "--households", county, "--db", db)
    assert (result.exit_code == 2 and result.exception is None) or isinstance(result.exception, SystemExit)
    assert "province_monitoring_line" in result.output and "2021" in result.output  # M21-4: the province's line
    assert "没有取值" in result.output and "has no value" in result.output and "--override" in result.output
    assert "Traceback" not in result.output
    from povertyrules.monitor.alerts import list_alerts
    from povertyrules.store.database import connect

    assert {a.household_id for a, _ in list_alerts(connect(db))} == {"worker"}  # the 2020 alerts are kept


def test_an_event_dated_before_the_households_scored_year_is_rejected_alone(county, tmp_path):
    db = str(tmp_path / "a.db")
    events = write_events(tmp_path / "e.jsonl", [
        event("sick", "2005-03-01", "medical_expense", 50000),  # before 2020, the year the county file scored
        event("sick", "2020-03-01", "medical_expense", 25000),
    ])
    result = run("monitor", events, "--households", county, "--db", db)
    assert result.exit_code == 0, result.output
    assert "processed 1 + rejected 1" in result.output and "alerts raised 1" in result.output
    rejects = [json.loads(x) for x in Path(f"{events}.rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rejects] == [1] and "评定年度" in rejects[0]["reason"]
