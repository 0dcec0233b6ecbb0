"""“What would change the outcome” in the reader's language: household facts only, with today's value and the
value that flips it — and each flip, applied to the household, really changes the decision."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from povertyrules import score
from povertyrules.cli.main import app
from povertyrules.store.changes import readable_changes
from povertyrules.store.database import connect
from povertyrules.store.explain import explain_stored, snapshot_rulebook
from povertyrules.store.runs import decision_of, get_run, reasons_of, record_run
from povertyrules.web.app import create_app

from .conftest import households

COUNTY = households(
    {"household_id": "car", "net_income": "6000", "four_look_score": "40", "ex_vehicle": "是"},
    {"household_id": "poor", "net_income": "6000", "four_look_score": "40", "registered_status": "none"},
)
SNAKE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("changes") / "audit.db")
    record_run(connect(db), score(COUNTY, keep_records=True), "county.csv")
    return db


def _lines(db: str, household: str, lang: str) -> list[str]:
    engine = connect(db)
    decision = decision_of(engine, household)
    run = get_run(engine, decision.run_id)
    explanation = explain_stored(run, decision, reasons_of(engine, household, run.id)).to_dict()
    return [line["text"] for line in readable_changes(snapshot_rulebook(run), explanation, lang)]


def test_the_conditions_are_household_facts_with_todays_value_and_the_flipping_one(stored):
    lines = _lines(stored, "car", "zh")
    assert "若“有小轿车（含面包车）工程机械或大型农机具”为“否”（现为“是”），精准识别结果将变为“识别为贫困户”" in lines
    assert "若人均纯收入高于 4,000 元（现为 3,000 元），精准识别结果将变为“不符合识别标准”" in lines
    text = "\n".join(lines)
    assert not SNAKE.search(text) and "监测倍数" not in text and "机制" not in text  # never a policy parameter
    assert not re.search(r"unknown|None|nan|（现为 [^）]*）\s*$", text)
    # nothing about this household changes its exit assessment (it is not registered): said so
    assert "本户的收入、评分和各项情形，改变其中一两项都不会改变退出评估结果（不适用）" in lines


def test_the_english_view_is_english(stored):
    lines = _lines(stored, "car", "en")
    assert "if per-capita income above 4,000 yuan (now 3,000 yuan), identification becomes " \
           "'does not meet the criteria'" in lines
    assert not re.search(r"[\u4e00-\u9fff]", "\n".join(x for x in lines if "四看法" not in x))


def test_each_income_flip_shown_really_flips_the_decision(stored):
    lines = _lines(stored, "poor", "zh")
    shown = [re.search(r"人均纯收入(高于|不高于|低于|不低于) ([\d,]+) 元（现为 ([\d,]+) 元），(\S+)将变为“(.+)”", x)
             for x in lines]
    flips = [m for m in shown if m and m.group(4) == "精准识别结果"]
    assert flips
    for m in flips:
        threshold = float(m.group(2).replace(",", ""))
        target = threshold + 1 if m.group(1) in ("高于", "不低于") else threshold - 1
        changed = score(households({**COUNTY.iloc[1].to_dict(), "net_income": str(target * 2)}))
        label = snapshot_rulebook(get_run(connect(stored), 1)).decisions["identification"].label(
            changed.decisions["identification"].iloc[0], "zh")
        assert label == m.group(5)


def test_the_household_page_and_explain_put_the_changes_near_the_top(stored):
    page = TestClient(create_app(stored)).get("/household/car").text
    assert page.index('id="changes"') < page.index("判定依据")
    assert "若人均纯收入高于 4,000 元（现为 3,000 元）" in page
    english = TestClient(create_app(stored)).get("/household/car", params={"lang": "en"}).text
    assert "if per-capita income above 4,000 yuan (now 3,000 yuan)" in english
    output = CliRunner().invoke(app, ["explain", "car", "--db", stored]).output
    assert output.index("改变结果的条件") < output.index("条款原文")
    assert "人均纯收入 3,000 元 · 标准线 4,000 元" in output and "六不评排除" in output


def test_every_fact_stated_only_in_english_has_a_marked_chinese_summary():
    from povertyrules.lang.clauses import clauses
    from povertyrules.store.readable import clause_texts

    english_only = {c: t for c, t in clauses().items() if c.startswith("M21-")}
    assert english_only
    shown = clause_texts(english_only, "zh")
    for clause, text in shown.items():
        assert "摘要，非原文" in text and text != english_only[clause], clause
        assert sum("\u4e00" <= ch <= "\u9fff" for ch in text) > len(text) / 3, clause  # Chinese for a Chinese reader
    assert clause_texts(english_only, "en") == english_only
    assert clause_texts({"ID-3": clauses()["ID-3"]}, "zh") == {"ID-3": clauses()["ID-3"]}  # word for word kept


def test_the_decisive_reason_comes_first_and_is_the_rule_that_gave_the_outcome(tmp_path):
    import json

    from povertyrules.datasets.synth import synth
    from povertyrules.store.readable import readable_reasons
    from povertyrules.store.runs import decisions_frame

    frame = synth(300, seed=11, members=False, bad_rate=0.0, blank_rate=0.03).households
    frame.loc[0, ["year", "registered_status", "members", "net_income", "rigid_expenditure"]] = \
        ["2020", "poor", "2", "20000", None]  # registered poor, above the monitoring line, spending unknown
    engine = connect(str(tmp_path / "a.db"))
    run_id = record_run(engine, score(frame, keep_records=True), "synth.csv")
    stored = get_run(engine, run_id)
    book = snapshot_rulebook(stored)
    seen, agreeing = set(), set()
    for hid in decisions_frame(engine, run_id)["household_id"][:120]:
        decision = decision_of(engine, hid, run_id)
        explanation = explain_stored(stored, decision, reasons_of(engine, hid, run_id)).to_dict()
        sections = readable_reasons(book, decision.trace, json.loads(stored.trace_rules), explanation["decision"],
                                    explanation["reasons"], "zh")
        for section in sections:
            name = section["decision"]
            if name in explanation["decision"]:
                assert section["outcome"] == book.decisions[name].label(explanation["decision"][name] or "", "zh")
            decisive = [r for r in section["reasons"] if r["decisive"]]
            review = section["outcome"] == book.decisions[name].label("review", "zh")
            assert decisive or review, (hid, name)  # a decided outcome always names what decided it
            if not decisive:
                continue
            assert section["reasons"][:len(decisive)] == decisive  # first
            if len(decisive) > 1:  # no rule known to hold, every rule that may apply agrees (see `agreeing`)
                assert not review and {r["verdict"] for r in decisive} == {"unknown"}
                agreeing.add(name)
            else:
                assert decisive[0]["verdict"] == ("unknown" if review else "true")
            for reason in decisive if not review else []:
                assert book.decisions[name].label(book.rules[reason["rule_id"]].outcome or "", "zh") == \
                    section["outcome"]
            seen.add((name, section["outcome"]))
    assert len(seen) >= 6  # several outcomes of several decisions were checked
    assert agreeing  # and outcomes decided by rules that agree


def test_explaining_households_together_gives_each_the_answer_it_gets_alone(tmp_path):
    from povertyrules.datasets.synth import synth
    from povertyrules.store.explain import explain_many
    from povertyrules.store.runs import decisions_frame

    frame = synth(200, seed=5, members=False, bad_rate=0.0, blank_rate=0.05).households
    engine = connect(str(tmp_path / "a.db"))
    run_id = record_run(engine, score(frame, keep_records=True), "synth.csv")
    stored = get_run(engine, run_id)
    ids = list(decisions_frame(engine, run_id)["household_id"][:60])
    decisions = [decision_of(engine, h, run_id) for h in ids]
    reasons = {h: reasons_of(engine, h, run_id) for h in ids}
    together = explain_many(stored, decisions[::-1], reasons)  # (in another order, too)
    changed = 0
    for decision in decisions:
        alone = explain_stored(stored, decision, reasons[decision.household_id]).to_dict()
        assert together[decision.household_id].to_dict() == alone
        changed += bool(alone["what_would_change"])
    assert changed > 30
