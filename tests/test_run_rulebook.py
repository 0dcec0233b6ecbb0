"""One rule book per run: monitor, confirm, procedure and explain's procedure view use the rules the run was
scored with (its stored snapshot), or those given, never silently today's shipped rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.lang.rulebook import DEFAULT_RULES
from povertyrules.monitor.alerts import list_alerts
from povertyrules.store.database import connect

from .conftest import households

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def county(tmp_path) -> Path:
    path = tmp_path / "county.csv"
    households({"household_id": "sick", "registered_status": "exited", "net_income": "20000",
                "able_bodied": "2"}).to_csv(path, index=False)
    return path


def medical(tmp_path: Path, amount: int) -> Path:
    path = tmp_path / f"e{amount}.jsonl"
    path.write_text(json.dumps({"household_id": "sick", "date": "2020-05-01", "source": "health",
                                "kind": "medical_expense", "amount": amount}) + "\n", encoding="utf-8")
    return path


def test_monitor_uses_the_override_the_run_was_scored_with(county, tmp_path):
    db = str(tmp_path / "a.db")
    scored = run("score", county, "-o", tmp_path / "d.csv", "--store", "--db", db,
                 "--set", "rigid_expenditure_ratio=2")  # the county: rigid costs must pass twice last year's income
    assert scored.exit_code == 0, scored.output
    result = run("monitor", medical(tmp_path, 25_000), "--db", db)  # > 19,000 but < 38,000
    assert result.exit_code == 0, result.output
    assert "the rules run 1 was scored with" in result.output
    assert "alerts raised 0" in result.output
    shipped = run("monitor", medical(tmp_path, 25_001), "--db", db, "--rules", DEFAULT_RULES)  # asked for
    assert "alerts raised 1" in shipped.output
    assert len(list_alerts(connect(db))) == 1


def test_procedures_follow_the_steps_of_the_runs_rules(county, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, rules)
    steps = rules / "procedures" / "steps.yaml"
    text = steps.read_text(encoding="utf-8")
    steps.write_text(text.replace("    - {id: signature, zh: 签字确认, en: signature}\n", ""), encoding="utf-8")
    db = str(tmp_path / "a.db")
    poor = tmp_path / "poor.csv"
    households({"household_id": "p1", "net_income": "3000", "four_look_score": "40"}).to_csv(poor, index=False)
    assert run("score", poor, "-o", tmp_path / "d.csv", "--store", "--db", db, "--rules", rules).exit_code == 0
    for step in ("application", "village_review", "assembly_publicity", "township_check", "county_review"):
        done = run("procedure", "record", "p1", "--step", step, "--actor", "clerk", "--date", "2020-03-01",
                   "--db", db)
        assert done.exit_code == 0, done.output
    shown = run("procedure", "show", "p1", "--db", db, "--lang", "en")
    assert "next step system_entry" in shown.output  # the run's rules have no signature step
    explained = run("explain", "p1", "--db", db, "--json")
    assert json.loads(explained.output)["procedures"]["identification"]["next_step"] == "system_entry"
    today = run("procedure", "show", "p1", "--db", db, "--rules", DEFAULT_RULES, "--lang", "en")
    assert "next step signature" in today.output  # today's shipped steps, because they were asked for


def test_confirm_records_steps_by_the_runs_rules(county, tmp_path):
    db = str(tmp_path / "a.db")
    assert run("score", county, "-o", tmp_path / "d.csv", "--store", "--db", db).exit_code == 0
    assert "alerts raised 1" in run("monitor", medical(tmp_path, 90_000), "--db", db).output
    confirmed = run("confirm", "1", "--actor", "county office", "--db", db)
    assert confirmed.exit_code == 0, confirmed.output
    shown = run("procedure", "show", "sick", "--procedure", "monitoring", "--db", db, "--lang", "en")
    assert "county_confirmation" not in shown.output.split("next step")[-1]
