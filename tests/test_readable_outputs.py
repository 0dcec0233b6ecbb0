"""What clerks and inspectors read of a 2021-regime county (2023): the risk-removal procedure shown where it
was recorded, no procedure prompted that does not apply, county-recorded codes in words, and no Python
``None`` / ``nan``, raw month numbers or internal names in the Chinese text."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.store.database import connect
from povertyrules.store.runs import decisions_frame
from povertyrules.web.app import create_app

runner = CliRunner()
SNAKE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
PYTHON = re.compile(r"\bNone\b|\bnan\b|\bNaN\b")


def run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readable")
    source, out, db = folder / "county2023.xlsx", folder / "d.xlsx", str(folder / "audit.db")
    made = run("datasets", "synth", "--year", 2023, "--households", 400, "--seed", 7, "-o", source)
    assert made.exit_code == 0, made.output
    scored = run("score", source, "--year", 2023, "--province", "云南省", "-o", out, "--store", "--db", db)
    assert scored.exit_code == 0, scored.output
    SCORED[db] = scored.output
    return source, out, db


SCORED: dict[str, str] = {}
INTERNAL = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b(?:poor|not_poor|excluded|eligible|not_eligible|edge|none|review|"
                      r"decision|status|count|run|monitored|limit)\b")


def _visible(text: str) -> str:
    """What a reader sees: without tags and style, file paths (the clerk's own) and the rules version."""
    text = re.sub(r"<style.*?</style>", "", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"[\w./-]+\.(?:xlsx|xls|csv|db)\b", " ", text)


def test_a_recorded_risk_removal_is_shown_in_explain_json_and_on_the_page(county):
    _, _, db = county
    frame = decisions_frame(connect(db), 1)
    watched = frame.loc[frame["monitoring"] != "none", "household_id"].iloc[0]
    recorded = run("procedure", "record", watched, "--procedure", "risk_removal", "--step", "home_verification",
                   "--actor", "王五", "--date", "2023-12-01", "--db", db)
    assert recorded.exit_code == 0, recorded.output
    as_json = json.loads(run("explain", watched, "--db", db, "--json").output)["procedures"]
    assert as_json["risk_removal"]["steps"][0]["actor"] == "王五"
    shown = run("explain", watched, "--db", db).output
    assert "风险消除程序（M21-6）" in shown and "入户核实 — 王五" in shown and "民主评议公示" in shown
    english = run("explain", watched, "--db", db, "--lang", "en").output
    assert "Risk-removal procedure (M21-6)" in english and "next step: democratic review and publicity" in english
    page = TestClient(create_app(db)).get(f"/household/{watched}").text
    procedures = page[page.index('id="procedures"'):]
    assert "风险消除程序" in procedures and "王五" in procedures and "入户核实" in procedures


def test_a_procedure_that_does_not_apply_is_not_prompted(tmp_path):
    from povertyrules import score
    from povertyrules.store.runs import record_run

    from .conftest import households

    db = str(tmp_path / "a.db")
    record_run(connect(db), score(households(
        {"household_id": "registered", "net_income": "6000", "four_look_score": "40", "registered_status": "贫困户"},
        {"household_id": "new", "net_income": "6000", "four_look_score": "40", "registered_status": "none"},
    ), keep_records=True), "county.csv")
    procedures = json.loads(run("explain", "registered", "--db", db, "--json").output)["procedures"]
    assert "identification" not in procedures  # already registered: no application is due
    assert "识别程序（ID-4）" not in run("explain", "registered", "--db", db).output
    assert "识别程序（ID-4）" not in TestClient(create_app(db)).get("/household/registered").text
    due = json.loads(run("explain", "new", "--db", db, "--json").output)["procedures"]
    assert due["identification"]["next_step"] == "application"


def test_a_source_is_named_in_chinese_and_a_wrong_one_is_refused_in_both_languages(county):
    _, _, db = county
    frame = decisions_frame(connect(db), 1)
    edge = frame.loc[frame["monitoring"] != "none", "household_id"].iloc[1]
    wrong = run("procedure", "record", edge, "--procedure", "monitoring", "--step", "source", "--actor", "李四",
                "--note", "走访", "--db", db)
    assert wrong.exit_code != 0 and "乡村干部走访排查" in wrong.output and "needs --note" in wrong.output
    ok = run("procedure", "record", edge, "--procedure", "monitoring", "--step", "source", "--actor", "李四",
             "--date", "2023-03-01", "--note", "乡村干部走访排查", "--db", db)
    assert ok.exit_code == 0, ok.output
    page = TestClient(create_app(db)).get(f"/household/{edge}").text
    procedures = page[page.index('id="procedures"'):page.index('id="reasons"')]
    assert "乡村干部走访排查" in procedures and not SNAKE.search(procedures)


def test_the_county_recorded_category_is_in_words_in_the_chinese_file(county):
    _, out, _ = county
    decisions = pd.read_excel(out, sheet_name=0, engine="calamine", dtype=str)
    recorded = set(decisions["监测对象类别（县级记录）"].dropna())
    assert recorded and not recorded & {"sudden_hardship", "unstable_exited", "edge", "none"}, recorded
    from povertyrules.analysis import load_decisions

    read_back = set(load_decisions(out)["county_category"].dropna())  # and read back as codes
    assert read_back and read_back <= {"sudden_hardship", "unstable_exited", "edge", "none"}, read_back


def test_explain_in_chinese_has_no_python_blanks_and_months_as_people_write_them(county):
    _, _, db = county
    frame = decisions_frame(connect(db), 1)
    months = 0
    watched = list(frame.loc[frame["monitoring"] != "none", "household_id"][:10])
    for household in [*frame["household_id"][:15], *watched]:
        shown = run("explain", household, "--db", db).output
        assert not PYTHON.search(shown), shown
        assert not re.search(r"识别监测时间 \d{3},\d{3}", shown), shown  # a YYYYMM month with a separator
        assert "元（未填）" not in shown  # a blank cause is named: （支出原因未填）
        months += len(re.findall(r"识别监测时间 20\d\d年\d{1,2}月", shown))
        page = TestClient(create_app(db)).get(f"/household/{household}").text
        assert not PYTHON.search(page.split("<body", 1)[-1]), household
    assert months  # some explanation named the month monitoring began


def test_what_a_clerk_prints_and_opens_in_chinese_has_no_internal_names(county, tmp_path):
    _, _, db = county
    assert "决定" in SCORED[db] and "户数" in SCORED[db]
    table = SCORED[db][SCORED[db].index("判定结果"):SCORED[db].index("输入行")]  # the lines around it are bilingual
    printed = {"score": table, "runs": run("runs", "--db", db).output,
               "核查": run("核查", "1", "--db", db, "-o", tmp_path / "rev.xlsx").output}
    frame = decisions_frame(connect(db), 1)
    watched = frame.loc[frame["monitoring"] != "none", "household_id"].iloc[2]
    from povertyrules.store import explain

    explain._BOOKS.clear()  # history reads each run's rules from its snapshot, not from a cache
    printed["history"] = run("history", watched, "--db", db).output
    printed["record"] = run("procedure", "record", watched, "--procedure", "monitoring", "--step", "source",
                            "--actor", "李四", "--date", "2023-03-01", "--note", "农户申报", "--db", db).output
    printed["show"] = run("procedure", "show", watched, "--procedure", "monitoring", "--db", db).output
    printed["watchlist"] = run("watchlist", "-o", tmp_path / "w.xlsx", "--db", db).output
    for name, text in printed.items():
        found = INTERNAL.findall(_visible(text))
        assert not found and not PYTHON.search(text), (name, found[:5], text[:2000])
    for path in (tmp_path / "rev.xlsx", tmp_path / "w.xlsx"):
        for sheet, table in pd.read_excel(path, sheet_name=None, engine="calamine", dtype=str).items():
            cells = " ".join([sheet, *map(str, table.columns), *table.fillna("").astype(str).to_numpy().ravel()])
            found = [x for x in INTERNAL.findall(_visible(cells)) if x not in ("run",)]
            assert not found, (path.name, sheet, found[:5])
    web = TestClient(create_app(db)).get("/run/1/watchlist.xlsx")
    sheets = pd.read_excel(__import__("io").BytesIO(web.content), sheet_name=None, engine="calamine", dtype=str)
    assert "监测名单" in sheets and "户编号" in sheets["监测名单"].columns
    page = TestClient(create_app(db)).get("/run/1/review").text
    found = INTERNAL.findall(_visible(page))
    assert not found, found[:5]


def test_diff_in_chinese_names_decisions_and_rules_and_shows_no_nan(tmp_path):
    from povertyrules import score
    from povertyrules.store.runs import record_run

    from .conftest import households

    db = str(tmp_path / "a.db")
    county = households({"household_id": "rich1", "net_income": "11000", "net_income_last_year": "11000",
                         "four_look_score": "40"},
                        {"household_id": "new1", "net_income": "6000", "four_look_score": "40"})
    engine = connect(db)
    record_run(engine, score(county, keep_records=True), "a.csv")
    record_run(engine, score(county.assign(net_income=["6000", "6000"]), keep_records=True), "b.csv")
    result = run("diff", "1", "2", "--db", db)
    shown = result.output
    assert result.exit_code == 0, (result.output, result.exception)
    assert "户编号" in shown and "变化的条件" in shown and "识别为贫困户" in shown
    same = run("diff", "1", "1", "--db", db)  # two runs that agree: nothing changed, and no error
    assert same.exit_code == 0 and "0 项判定有变化" in same.output, (same.output, same.exception)
    found = INTERNAL.findall(_visible(shown))
    assert not found and not PYTHON.search(shown), (found[:5], shown)


def test_a_bad_registered_status_lists_the_chinese_spellings(tmp_path):
    from .conftest import households

    source = tmp_path / "bad.csv"
    households({"registered_status": "未知"}).to_csv(source, index=False)
    scored = run("score", source, "-o", tmp_path / "d.csv")
    errors = pd.read_csv(tmp_path / "d.errors.csv", dtype=str) if (tmp_path / "d.errors.csv").exists() else None
    text = scored.output + ("" if errors is None else errors.to_string())
    assert "未建档、贫困户、已脱贫" in text, text
