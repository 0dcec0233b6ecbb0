"""Events never take `monitor` down: each bad event is a reject with its line; alerts are committed as they come
and re-reading a file raises no second alert."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.lang.rulebook import load_rulebook
from povertyrules.monitor.alerts import list_alerts
from povertyrules.monitor.events import Event
from povertyrules.monitor.households import from_file
from povertyrules.monitor.stream import EventNotApplied, Monitor
from povertyrules.store.database import connect

from .conftest import households

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def county(tmp_path) -> Path:
    frame = households(*({"household_id": f"h{i}", "registered_status": "exited", "net_income": "20000",
                          "able_bodied": "2"} for i in range(40)),
                       {"household_id": "a[/]b", "registered_status": "exited", "able_bodied": "1"})
    path = tmp_path / "county.csv"
    frame.to_csv(path, index=False)
    return path


def good_events(n: int = 400) -> list[str]:
    """Medical costs that add up past last year's income for every household: 40 alerts."""
    return [json.dumps({"household_id": f"h{i % 40}", "date": f"2020-{1 + i // 40 % 12:02d}-01",
                        "source": "health", "kind": "medical_expense", "amount": 2500 + i, "note": ""})
            for i in range(n)]


BAD = {
    "1e400": '{"household_id": "h1", "date": "2020-05-01", "source": "health", "kind": "medical_expense", '
             '"amount": 1e400}',
    "inf": '{"household_id": "h1", "date": "2020-05-01", "source": "health", "kind": "medical_expense", '
           '"amount": "inf"}',
    "1e308": '{"household_id": "h1", "date": "2020-05-01", "source": "health", "kind": "medical_expense", '
             '"amount": 1e308}',
    "year 1": '{"household_id": "h1", "date": "0001-01-01", "source": "health", "kind": "medical_expense", '
              '"amount": 1}',
    "year 2999": '{"household_id": "h1", "date": "2999-01-01", "source": "health", "kind": "medical_expense", '
                 '"amount": 1}',
    "markup id": '{"household_id": "[/]x[bold]", "date": "2020-05-01", "source": "health", '
                 '"kind": "medical_expense", "amount": 1}',
    "deep json": "[" * 100_000 + "]" * 100_000,
    "deep object": '{"a":' * 5_000 + "1" + "}" * 5_000,
    "deep but short": "[" * 4_000 + "]" * 4_000,
    "not utf-8": b'{"household_id": "h1", "note": "\xff\xfe"}'.decode("latin-1"),
    "nul": '{"household_id": "h1\x00", "date": "2020-05-01"}',
}


def write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(b"".join(line.encode("latin-1") if "\xff" in line else line.encode() for line in
                              (f"{line}\n" for line in lines)))
    return path


def test_every_bad_event_is_a_reject_and_the_batch_still_lands(county, tmp_path):
    good = good_events()
    clean = run("monitor", write(tmp_path / "good.jsonl", good), "--households", county, "--db", tmp_path / "g.db")
    assert clean.exit_code == 0, clean.output
    expected = len(list_alerts(connect(tmp_path / "g.db")))
    assert expected == 40
    mixed = good[:200] + list(BAD.values()) + good[200:]
    events = write(tmp_path / "mixed.jsonl", mixed)
    result = run("monitor", events, "--households", county, "--db", tmp_path / "m.db")
    assert result.exit_code == 0, result.output
    assert f"events read {len(mixed)} = processed {len(good)} + rejected {len(BAD)}" in result.output.replace("\n", "")
    assert len(list_alerts(connect(tmp_path / "m.db"))) == expected
    rejects = [json.loads(line) for line in (tmp_path / "mixed.jsonl.rejects.jsonl").read_text("utf-8").splitlines()]
    assert [r["line"] for r in rejects] == list(range(201, 201 + len(BAD)))
    reasons = dict(zip(BAD, (r["reason"] for r in rejects), strict=True))
    assert all("out of range" in reasons[k] for k in ("1e400", "inf", "1e308"))
    assert "outside" in reasons["year 1"] and "outside" in reasons["year 2999"]
    assert "unknown household [/]x[bold]" in reasons["markup id"]
    assert "UTF-8" in reasons["not utf-8"]
    assert "[/]x[bold]" in result.output  # printed as text, not read as markup


def test_a_household_id_with_markup_is_printed_as_text(county, tmp_path):
    events = write(tmp_path / "e.jsonl", [json.dumps({"household_id": "a[/]b", "date": "2020-05-01",
                                                      "source": "health", "kind": "medical_expense",
                                                      "amount": 90_000})])
    result = run("monitor", events, "--households", county, "--db", tmp_path / "m.db")
    assert result.exit_code == 0, result.output
    assert "alert: a[/]b rigid_expenditure_high" in result.output
    listed = run("alerts", "--db", tmp_path / "m.db")
    assert listed.exit_code == 0 and "a[/]b" in listed.output


def test_an_event_the_rules_engine_refuses_is_not_applied_and_leaves_the_household_as_it_was(county):
    watcher = Monitor(load_rulebook(), from_file(county))
    for amount in (1e308, float("inf")):  # past validation, durable_rules refuses the fact (errors 202 / 204)
        with pytest.raises(EventNotApplied, match="error code"):
            watcher.process(Event(1, "h1", dt.date(2020, 3, 1), "health", "medical_expense", amount, None))
    assert watcher.years == {}
    raised = watcher.process(Event(2, "h1", dt.date(2020, 3, 1), "health", "medical_expense", 30_000, None))
    assert [p.trigger for p in raised] == ["rigid_expenditure_high"]
    assert raised[0].observed["rigid_expenditure"] == 30_000


def test_alerts_are_committed_as_they_come_so_a_crash_loses_nothing_processed(county, tmp_path, monkeypatch):
    events = write(tmp_path / "e.jsonl", good_events())
    calls = {"n": 0}
    original = Monitor._apply

    def crash_late(self, event):
        calls["n"] += 1
        if calls["n"] == 390:
            raise KeyboardInterrupt  # the operator pulls the plug after 389 events
        return original(self, event)

    monkeypatch.setattr(Monitor, "_apply", crash_late)
    result = run("monitor", events, "--households", county, "--db", tmp_path / "m.db")
    assert result.exit_code != 0
    stored = list_alerts(connect(tmp_path / "m.db"))
    assert len(stored) == 40  # every household passed its line before event 390
    monkeypatch.undo()
    again = run("monitor", events, "--households", county, "--db", tmp_path / "m.db")
    assert again.exit_code == 0, again.output
    assert "alerts raised 0 (40 already stored" in again.output.replace("\n", "")
    assert len(list_alerts(connect(tmp_path / "m.db"))) == 40


def test_rereading_a_file_or_a_repeated_event_raises_no_second_alert(county, tmp_path):
    line = json.dumps({"household_id": "h3", "date": "2020-05-01", "source": "health", "kind": "medical_expense",
                       "amount": 90_000})
    events = write(tmp_path / "e.jsonl", [line, line])
    first = run("monitor", events, "--households", county, "--db", tmp_path / "m.db")
    assert "processed 1 + rejected 1" in first.output and "alerts raised 1" in first.output
    assert "already read" in (tmp_path / "e.jsonl.rejects.jsonl").read_text("utf-8")
    copy = write(tmp_path / "copy.jsonl", [line])
    second = run("monitor", copy, "--households", county, "--db", tmp_path / "m.db")
    assert "alerts raised 0" in second.output
    assert len(list_alerts(connect(tmp_path / "m.db"))) == 1


def test_a_bad_csv_line_is_a_reject(county, tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"household_id,date,source,kind,amount,note\n"
                     b"h1,2020-05-01,health,medical_expense,90000,\n"
                     b"h2,2020-05-01,health,medical_expense,\xff\xfe,\n"
                     b"h3,2020-05-01,health,medical_expense,1e400,\n"
                     b'h4,"2020-05-01,health\n')
    result = run("monitor", path, "--households", county, "--db", tmp_path / "m.db")
    assert result.exit_code == 0, result.output
    assert "events read 4 = processed 1 + rejected 3" in result.output.replace("\n", "")
