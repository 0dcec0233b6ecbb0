"""The audit store, on SQLite and PostgreSQL: runs, explain, history, diff, watchlist, append-only, procedures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml
from sqlalchemy import event, text
from sqlmodel import Session, select
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.io.tables import read_table
from povertyrules.lang.rulebook import DEFAULT_RULES
from povertyrules.store.database import connect
from povertyrules.store.models import Decision, Run
from povertyrules.store.rows import readable
from povertyrules.store.runs import decision_of, get_run

from .conftest import SAMPLE, households

runner = CliRunner()


def run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def score_and_store(db: str, source: Path, out: Path, *extra) -> int:
    result = run("score", source, "-o", out, "--store", "--db", db, *extra)
    assert result.exit_code == 0, result.output
    return int(result.output.strip().splitlines()[-1])


@pytest.fixture
def small_county(tmp_path) -> Path:
    """Six households that cover every identification outcome, an exit and both monitoring categories."""
    frame = households(
        {"household_id": "poor1", "net_income": "6000", "four_look_score": "40"},
        {"household_id": "car1", "net_income": "6000", "four_look_score": "40", "ex_vehicle": "是",
         "county": "甲县", "township": "一镇"},
        {"household_id": "rich1"},
        {"household_id": "exit1", "registered_status": "poor", "net_income": "9000", "net_income_last_year": "7000",
         "four_look_score": "65", "able_bodied": "2"},
        {"household_id": "weak1", "registered_status": "exited", "net_income": "10000", "able_bodied": "0",
         "expenditure_cause": "因病", "rigid_expenditure": "25000"},
        {"household_id": "edge1", "net_income": "11000", "able_bodied": "1"},
    )
    frame["county"] = frame["county"].fillna("甲县") if "county" in frame else "甲县"
    frame["township"] = frame["township"].fillna("二镇") if "township" in frame else "二镇"
    path = tmp_path / "county.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_stored_run_records_its_input_rules_parameters_and_counts(db, small_county, tmp_path):
    run_id = score_and_store(db, small_county, tmp_path / "d.csv", "--operator", "张三")
    engine = connect(db)
    with Session(engine) as session:
        stored = session.get(Run, run_id)
        assert stored.operator == "张三" and stored.decided == 6 and stored.error_rows == 0
        assert len(stored.input_sha256) == 64 and stored.year == 2020
        parameters = json.loads(stored.parameters)
        assert parameters["poverty_line"]["values"]["2020"]["value"] == 4000
        assert "2021-04-06" in parameters["poverty_line"]["values"]["2020"]["source"]
        assert "ID-2.3.4" in json.loads(stored.clauses)
        count = session.execute(select(Decision).where(Decision.run_id == run_id)).all()
        assert len(count) == 6


def test_explain_gives_reasons_clause_text_and_what_would_change(db, small_county, tmp_path):
    score_and_store(db, small_county, tmp_path / "d.csv")
    result = run("explain", "car1", "--db", db)
    assert result.exit_code == 0, result.output
    shown = result.output.replace("\n", "")
    blocks = result.output.split("\n\n")  # the reasons: one block per decision, headed by its name and outcome
    section = next(b for b in blocks if b.startswith("精准识别结果：六不评排除\n")).replace("\n", "")
    first = section[len("精准识别结果：六不评排除"):].strip()
    # the decisive rule first
    assert first.startswith("✓ 【决定本项结果】有“六不评”情形之一的，一般不得评为贫困户：符合")
    assert "有小轿车（含面包车）、工程机械或大型农机具 是" in section and "人均纯收入 3,000 元" in section
    assert "excluded" not in shown and "ex_2_3_4_vehicle" not in shown
    assert "家庭成员中拥有小轿车（含面包车）、工程机械、大型农机具的；" in result.output.replace("\n", "")
    data = json.loads(run("explain", "car1", "--db", db, "--json").output)
    assert data["decision"]["identification"] == "excluded"
    rules = {r["rule_id"]: r for r in data["reasons"]}
    assert rules["ex_2_3_4_vehicle"]["verdict"] == "true" and rules["ex_2_3_4_vehicle"]["clause"] == "ID-2.3.4"
    assert rules["income_below_line"]["observed"] == {"per_capita_income": 3000}
    assert rules["income_below_line"]["thresholds"] == {"poverty_line": 4000}
    changes = [(c["decision"], c["outcome"], [x["name"] for x in c["conditions"]]) for c in data["what_would_change"]]
    assert ("identification", "poor", ["hardship_approved"]) in changes
    assert ("identification", "poor", ["ex_2_3_4_vehicle"]) in changes
    hints = [x["hint"] for c in data["what_would_change"] for x in c["conditions"]]
    assert "per_capita_income > 4,000 (now 3,000)" in hints  # 以下 includes the line: only above it moves


def test_explain_of_a_rich_household_says_how_low_income_would_have_to_be(db, small_county, tmp_path):
    score_and_store(db, small_county, tmp_path / "d.csv")
    data = json.loads(run("explain", "poor1", "--db", db, "--json").output)
    assert data["decision"]["identification"] == "poor"
    hints = {x["hint"] for c in data["what_would_change"] if c["outcome"] == "not_poor" for x in c["conditions"]}
    # 以下 includes the line: only income above it moves the household
    assert "per_capita_income > 4,000 (now 3,000)" in hints and "four_look_total >= 60 (now 40)" in hints


def test_explain_of_an_unknown_household_fails_clearly(db, small_county, tmp_path):
    score_and_store(db, small_county, tmp_path / "d.csv")
    result = run("explain", "nobody", "--db", db)
    assert result.exit_code == 1 and "household nobody is not in the store" in result.output


def test_explain_gives_the_same_answer_after_the_rule_files_change(db, small_county, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, rules)
    score_and_store(db, small_county, tmp_path / "d.csv", "--rules", rules)
    before = json.loads(run("explain", "car1", "--db", db, "--json").output)
    line = rules / "parameters" / "poverty" / "poverty_line.yaml"
    data = yaml.safe_load(line.read_text(encoding="utf-8"))
    data["values"][next(k for k in data["values"] if str(k) == "2020-01-01")]["value"] = 10000
    line.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    identification = rules / "identification.yaml"
    changed = identification.read_text(encoding="utf-8").replace("在标准线以下，含本数", "CHANGED")
    identification.write_text(changed, encoding="utf-8")
    after = json.loads(run("explain", "car1", "--db", db, "--json").output)
    assert after == before
    assert "per_capita_income > 4,000 (now 3,000)" in json.dumps(after, ensure_ascii=False)


def test_no_api_path_changes_a_stored_decision(db, small_county, tmp_path):
    run_id = score_and_store(db, small_county, tmp_path / "d.csv")
    engine = connect(db)
    with Session(engine) as session:
        decision = session.execute(select(Decision).where(Decision.household_id == "car1")).scalars().one()
        decision.identification = "poor"
        session.add(decision)
        with pytest.raises(Exception, match="append-only"):
            session.commit()
    for statement in ("UPDATE decision SET identification = 'poor'", "DELETE FROM decision",
                      "UPDATE run SET operator = 'x'", "DELETE FROM run"):
        with engine.connect() as connection, pytest.raises(Exception, match="append-only"):
            connection.execute(text(statement))
            connection.commit()
    assert decision_of(engine, "car1", run_id).identification == "excluded"


def test_rescoring_makes_a_new_run_and_leaves_the_old_one(db, small_county, tmp_path):
    first = score_and_store(db, small_county, tmp_path / "a.csv")
    second = score_and_store(db, small_county, tmp_path / "b.csv", "--set", "monitoring_multiplier=3")
    assert second == first + 1
    engine = connect(db)
    assert decision_of(engine, "rich1", first).monitoring == "none"
    assert decision_of(engine, "rich1", second).monitoring == "edge"
    assert decision_of(engine, "rich1").run_id == second


def test_history_and_diff_show_what_changed_and_the_rule_that_did_it(db, small_county, tmp_path):
    first = score_and_store(db, small_county, tmp_path / "a.csv")
    second = score_and_store(db, small_county, tmp_path / "b.csv", "--set", "monitoring_multiplier=3")
    history = run("history", "rich1", "--db", db)
    assert history.exit_code == 0 and history.output.count("2020") >= 2 and "◀" in history.output
    out = tmp_path / "diff.csv"
    result = run("diff", first, second, "--db", db, "-o", out, "--lang", "en")  # en: names and codes, for programs
    assert result.exit_code == 0, result.output
    changes = pd.read_csv(out)
    rich = changes[changes["household_id"] == "rich1"].iloc[0]
    assert (rich["run_a"], rich["run_b"]) == ("none", "edge")
    assert rich["decisive_rule_a"] == "mon_no_risk" and rich["decisive_rule_b"] == "mon_edge"
    assert "low_income: false→true" in rich["changed_conditions"]
    assert "poor1" not in set(changes["household_id"])


def test_watchlist_lists_monitored_households_by_risk_with_assistance_and_scale(db, small_county, tmp_path):
    score_and_store(db, small_county, tmp_path / "d.csv")
    out = tmp_path / "watch.xlsx"
    result = run("watchlist", "-o", out, "--db", db, "--lang", "en")
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["watchlist", "scale"]
    watch = read_table(out, sheet="watchlist")
    # two triggers before one; then the lowest income relative to the monitoring line first
    assert list(watch["household_id"]) == ["car1", "weak1", "edge1"]
    car, weak, edge = (watch.iloc[i] for i in range(3))
    assert car["monitoring"] == "edge" and car["monitoring_triggers"] == "low_income;income_drop"
    assert weak["monitoring"] == "unstable_exited" and weak["monitoring_triggers"] == "low_income;rigid_expenditure"
    assert "MON-4.3" in weak["assistance"] and "MON-4.3" in weak["assistance_cause"]
    assert "MON-4.2" in edge["assistance"] and edge["assistance_cause"] == "原因不明"  # no cause given: unknown
    # the household's own columns come from its stored input row, row by row (not by a reset index)
    columns = watch[["members", "able_bodied", "expenditure_cause"]].fillna("")
    assert columns.values.tolist() == [["2", "", ""], ["2", "0", "因病"], ["2", "1", ""]]
    scale = read_table(out, sheet="scale")
    row = scale[scale["county"] == "甲县"].iloc[0]
    assert (row["monitored_people"], row["registered_people"]) == ("6", "4") and row["check"].startswith("WARNING")
    assert "WARNING" in result.output
    only = tmp_path / "one.xlsx"
    assert run("watchlist", "-o", only, "--db", db, "--township", "一镇", "--lang", "en").exit_code == 0
    assert list(read_table(only, sheet="watchlist")["household_id"]) == ["car1"]


def test_the_watchlist_of_the_sample_has_every_households_columns(db, tmp_path):
    score_and_store(db, SAMPLE, tmp_path / "d.csv")
    out = tmp_path / "watch.xlsx"
    assert run("watchlist", "-o", out, "--db", db, "--lang", "en").exit_code == 0
    watch = read_table(out, sheet="watchlist")
    assert len(watch) > 20
    assert watch["members"].notna().all() and watch["able_bodied"].notna().mean() > 0.8
    assert watch["expenditure_cause"].notna().any()


def test_diff_with_an_unknown_run_is_an_error_not_a_list_of_changes(db, small_county, tmp_path):
    first = score_and_store(db, small_county, tmp_path / "a.csv")
    for args in ((first, 9), (9, first)):
        result = run("diff", *args, "--db", db)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        text = " ".join(result.output.split())
        assert "审计库中没有运行 9" in text and "the store holds no run 9" in text
        assert "changed decisions" not in text and "Traceback" not in text


def test_scoring_stores_decisions_in_bulk_not_one_orm_object_per_row(db, tmp_path):
    inserted = []

    def count(*_args) -> None:
        inserted.append(1)

    event.listen(Decision, "before_insert", count)
    try:
        score_and_store(db, SAMPLE, tmp_path / "d.csv")
    finally:
        event.remove(Decision, "before_insert", count)
    assert inserted == []  # the ORM never saw a Decision object: rows went in as one bulk write
    with Session(connect(db)) as session:
        assert len(session.execute(select(Decision.id)).all()) > 1900
        traces = session.execute(select(Decision.trace)).scalars().all()
        assert all(t and set(t) <= set("0123456789abcdef") for t in traces)  # the trace: no reason rows


def test_explain_says_whether_the_status_is_final_by_its_procedure(db, small_county, tmp_path):
    score_and_store(db, small_county, tmp_path / "d.csv")
    before = json.loads(run("explain", "poor1", "--db", db, "--json").output)["procedures"]
    named = {"zh": "识别程序", "en": "Identification procedure"}
    assert before["identification"] == {"name": named, "clause": "ID-4", "complete": False, "next_step": "application",
                                        "next_label": {"zh": "农户申请", "en": "household applies"}, "steps": []}
    steps = ["application", "village_review", "assembly_publicity", "township_check", "county_review",
             "signature", "system_entry"]
    for day, step in enumerate(steps, start=1):
        assert run("procedure", "record", "poor1", "--step", step, "--actor", "x", "--date", f"2020-04-{day:02d}",
                   "--db", db).exit_code == 0
    after = json.loads(run("explain", "poor1", "--db", db, "--json").output)["procedures"]
    assert after["identification"]["complete"] is True and len(after["identification"]["steps"]) == 7
    assert "procedure complete" in run("explain", "poor1", "--db", db, "--lang", "en").output
    shown = run("explain", "poor1", "--db", db).output
    assert "2020-04-01 农户申请 — x" in shown and "2020-04-07 录入系统 — x" in shown  # steps done, when, by whom
    listed = run("runs", "--db", db)
    assert listed.exit_code == 0 and "2020" in listed.output


def test_procedures_are_recorded_in_order_and_objections_send_them_back(db):
    steps = ["application", "village_review", "assembly_publicity", "township_check", "county_review",
             "signature", "system_entry"]
    ok = run("procedure", "record", "h9", "--step", "application", "--actor", "李四", "--date", "2020-03-01",
             "--db", db, "--lang", "en")
    assert ok.exit_code == 0 and "next step: village_review" in ok.output
    wrong = run("procedure", "record", "h9", "--step", "township_check", "--actor", "李四", "--db", db)
    assert wrong.exit_code == 2 and "out of order" in wrong.output and "village review" in wrong.output
    assert "不合顺序" in wrong.output and "村级初审并入户调查" in wrong.output  # the steps by their names
    run("procedure", "record", "h9", "--step", "village_review", "--actor", "村委", "--date", "2020-03-05", "--db", db)
    objection = run("procedure", "record", "h9", "--step", "assembly_publicity", "--actor", "村民代表会议",
                    "--date", "2020-03-10", "--objection", "--db", db, "--lang", "en")
    assert "next step: village_review" in objection.output
    for i, step in enumerate(steps[1:], start=11):
        result = run("procedure", "record", "h9", "--step", step, "--actor", "x", "--date", f"2020-03-{i}",
                     "--db", db)
        assert result.exit_code == 0, result.output
    shown = run("procedure", "show", "h9", "--db", db)
    assert "程序完成，结果生效" in shown.output  # Chinese by default; English with --lang en
    assert "complete: the status is final" in run("procedure", "show", "h9", "--db", db, "--lang", "en").output
    early = run("procedure", "record", "h8", "--step", "source", "--actor", "x", "--procedure", "monitoring",
                "--db", db)
    assert early.exit_code == 2 and "self_report" in early.output
    back = run("procedure", "record", "h8", "--step", "source", "--actor", "卫健局", "--procedure", "monitoring",
               "--note", "department_screening", "--date", "2020-05-01", "--db", db, "--lang", "en")
    assert back.exit_code == 0 and "county_confirmation" in back.output
    dated = run("procedure", "record", "h8", "--step", "county_confirmation", "--actor", "县扶贫办",
                "--procedure", "monitoring", "--date", "2020-04-01", "--db", db)
    assert dated.exit_code == 2 and "before the previous step" in dated.output and "早于上一步" in dated.output


def test_a_cell_holding_a_unicode_line_separator_is_stored_with_its_own_household(db, tmp_path):
    # U+2028 and U+0085 end a line for str.splitlines, not for JSON Lines: each input stays one stored row
    frame = households({"household_id": "a", "village": "上\u2028村"}, {"household_id": "b", "village": "下\x85村"},
                       {"household_id": "c"})
    frame.to_csv(tmp_path / "in.csv", index=False)
    run_id = score_and_store(db, tmp_path / "in.csv", tmp_path / "d.csv")
    engine = connect(db)
    with Session(engine) as session:
        rows = list(session.execute(select(Decision).where(Decision.run_id == run_id)).scalars())
    stored = {d.household_id: json.loads(d.inputs) for d in readable(get_run(engine, run_id), rows)}
    assert set(stored) == {"a", "b", "c"}
    assert stored["a"]["village"] == "上\u2028村" and stored["b"]["village"] == "下\x85村"


def test_explain_in_chinese_shows_no_internal_names_or_status_codes(db, small_county, tmp_path):
    import re

    score_and_store(db, small_county, tmp_path / "d.csv")
    internal = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b(?:poor|not_poor|excluded|eligible|not_eligible|edge|none|review|"
                          r"true|false|unknown|run|rules_version)\b")
    blanks = households({"household_id": "blank1", "registered_status": "", "net_income": "3000",
                         "food_secure": "", "rigid_expenditure": "", "four_look_score": ""})
    blanks.to_csv(tmp_path / "blanks.csv", index=False)
    score_and_store(db, tmp_path / "blanks.csv", tmp_path / "b.csv")
    assert "待补充数据：" in run("explain", "blank1", "--db", db).output
    for household in ("poor1", "car1", "rich1", "exit1", "weak1", "edge1", "blank1"):
        shown = run("explain", household, "--db", db).output.replace("\n", "")
        shown = re.sub(r"[\w./-]+\.(?:xlsx|xls|csv|ods|parquet)\b", " ", shown)  # file names are the clerk's own
        assert not internal.findall(shown), (household, internal.findall(shown)[:5])
        english = run("explain", household, "--db", db, "--lang", "en").output
        assert "What would change the outcome" in english and ("holds" in english or "does not hold" in english)
