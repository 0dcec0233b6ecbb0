"""The monitoring regime from 2021 (shared/policy/monitoring-2021.md, M21-…): dated by a parameter, province
monitoring lines, the three categories and risk removal, end to end from a synthetic 2023 county."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from povertyrules import load_rules, score
from povertyrules.cli.main import app
from povertyrules.errors import RuleError
from povertyrules.io.tables import read_table
from povertyrules.lang.cases import load_cases
from povertyrules.lang.clauses import clauses
from povertyrules.lang.rulebook import DEFAULT_RULES

from .conftest import SAMPLE, households

runner = CliRunner()
CITED = re.compile(r"^(?:(?:ID|EX|MON|M21)-[\w.]+,?)+ \w+: ")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def county2023(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("county2023")
    source, out = folder / "county2023.xlsx", folder / "out.xlsx"
    made = run("datasets", "synth", "--year", 2023, "--households", 3000, "--seed", 7, "-o", source)
    assert made.exit_code == 0, made.output
    scored = run("score", source, "--year", 2023, "--province", "云南省", "-o", out, "--lang", "en",
                 "--reasons", "full")
    assert scored.exit_code == 0, scored.output
    return source, read_table(out)


def test_a_2023_county_scored_for_yunnan_decides_all_three_categories_and_risk_removal(county2023):
    source, decisions = county2023
    headers = set(read_table(source).columns)
    assert {"合规自付支出", "饮水安全有保障", "识别监测时间", "帮扶措施数", "风险是否已消除", "监测对象类别"} <= headers
    assert set(decisions["monitoring_line"].astype(float)) == {8050.0}
    assert {"unstable_exited", "edge", "sudden_hardship", "none"} <= set(decisions["monitoring"])
    assert {"removed", "not_removed", "safety_net", ""} <= set(decisions["risk_removal"].fillna(""))
    for category, rule in (("unstable_exited", "mon21_unstable_exited"), ("edge", "mon21_edge"),
                           ("sudden_hardship", "mon21_sudden_hardship")):
        assert decisions.loc[decisions["monitoring"] == category, "reasons"].str.contains(f" {rule}: true").all()
    removed = decisions[decisions["risk_removal"] == "removed"]
    assert removed["reasons"].str.contains("M21-5 rr_monitored_long_enough: true").all()


def test_a_chinese_decisions_file_shows_risk_removal_in_words(county2023, tmp_path):
    source, english = county2023
    out = tmp_path / "zh.csv"
    assert run("score", source, "--year", 2023, "--province", "云南省", "-o", out).exit_code == 0
    chinese = read_table(out)
    decision = load_rules().decisions["risk_removal"]
    words = {code: decision.label(code, "zh") for code in [*decision.values, "review"]}
    assert chinese["风险消除评估"].fillna("").tolist() == english["risk_removal"].fillna("").map(words).tolist()
    assert not chinese["风险消除评估"].fillna("").str.contains(r"[a-z]").any()


def test_every_reason_of_a_2023_run_cites_its_clause(county2023):
    _, decisions = county2023
    known = set(clauses())
    for reasons in decisions["reasons"]:
        for reason in reasons.split(";"):
            assert CITED.match(reason), reason
            assert set(reason.split(" ")[0].split(",")) <= known, reason


def test_the_county_category_is_carried_beside_what_the_rules_decide(county2023):
    _, decisions = county2023
    assert {"unstable_exited", "edge", "sudden_hardship"} <= set(decisions["county_category"].dropna())
    assert set(decisions["risk_removed"].dropna()) == {"true", "false"}


def test_a_province_changes_nothing_in_2020():
    frame = read_table(SAMPLE)
    plain, yunnan = score(frame), score(frame, province="云南省")
    assert plain.rules_version != yunnan.rules_version
    columns = [c for c in plain.decisions.columns if c != "rules_version"]
    pd.testing.assert_frame_equal(plain.decisions[columns], yunnan.decisions[columns])


def test_an_unknown_province_is_a_clear_error_in_chinese_and_english_naming_the_shipped_ones():
    result = run("score", SAMPLE, "-o", "unused.csv", "--province", "四川省")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "四川省" in text and "云南省、福建省" in text and "shipped: 云南省, 福建省" in text
    assert "Traceback" not in result.output
    with pytest.raises(RuleError, match="no province file for 'Yunnan'"):
        load_rules(province="Yunnan")


def test_province_lines_carry_their_source_and_confidence():
    line = load_rules(province="云南省").parameters["province_monitoring_line"]
    assert line.entry(2023)[1].value == 8050 and line.entry(2023)[1].confidence == "high"
    assert line.entry(2025)[1].value == 8700 and line.entry(2025)[1].confidence == "medium"
    assert line.at(2024) is None  # no source found: never the 2023 value carried on
    fujian = load_rules(province="福建省").parameters["province_monitoring_line"].entry(2023)[1]
    assert fujian.value == 10560 and fujian.confidence == "medium"
    assert load_rules().parameters["province_monitoring_line"].at(2023) is None


def test_no_national_monitoring_figure_is_shipped_after_2020():
    book = load_rules()
    for name in ("poverty_line", "monitoring_multiplier", "province_monitoring_line"):
        assert all(book.parameters[name].at(y) is None for y in (2021, 2022, 2023)), name
    assert book.parameters["monitoring_scale"].at(2021) is None  # M21-8: the 5% scale is a 2020 text


def test_the_regime_is_dated_by_a_parameter_not_by_code():
    """Moving the regime's start date in an override moves the rules with it."""
    frame = households({"year": "2020", "registered_status": "exited", "net_income": "10000", "water_secured": "是"})
    assert score(frame).decisions["monitoring"][0] == "unstable_exited"  # 2020: low income alone (MON-2)
    early = score(frame, overrides={"regime_2021": {"2020-01-01": True}, "province_monitoring_line": 6000,
                                    "risk_removal_min_months": 6, "risk_removal_min_measures": 1}, reasons="full")
    assert early.decisions["monitoring"][0] == "none"  # M21-4: below the line but no risk
    rule = load_rules().rules["mon21_unstable_exited"]  # the zh reason: the rule's own words, no id
    assert f"M21-2,M21-4 {rule.description.zh}：否" in early.decisions["reasons"][0]


def test_rules_check_and_test_take_a_province():
    checked = run("rules", "check", "--province", "云南省", "--years", "2023")
    assert checked.exit_code == 0, checked.output  # the province file supplies 2023's monitoring line
    missing = run("rules", "check", "--province", "云南省", "--years", "2023-2024")
    assert missing.exit_code == 1 and "province_monitoring_line has no value in force for year(s) 2024" in \
        " ".join(missing.output.split())
    tested = run("rules", "test", "--province", "福建省")
    assert "Fujian's 2023 line" not in tested.output  # that case names its own province and passes
    assert tested.exit_code == 1 and "Without a province there is no monitoring line" in tested.output


def test_every_m21_fact_is_encoded_or_declared_not_encoded_and_cited_facts_are_exercised(book):
    facts = {c for c in clauses() if c.startswith("M21-")}
    cited = {c for r in book.rules.values() for c in r.clauses} | {c for p in book.parameters.values()
                                                                  for c in p.clause}
    declared = {n.clause for n in book.not_encoded}
    assert facts - {"M21-8"} <= cited | declared and "M21-7" in declared and "M21-8" in declared
    exercised = {c for case in load_cases(DEFAULT_RULES / "tests") for c in case.clauses}
    assert {"M21-1", "M21-2", "M21-3", "M21-4", "M21-5"} <= exercised


def test_the_risk_removal_procedure_runs_in_its_order(tmp_path):
    db = str(tmp_path / "audit.db")
    steps = [s["id"] for s in load_rules().procedures["risk_removal"]["steps"]]
    assert steps == ["home_verification", "assembly_publicity", "county_announcement"]
    wrong = run("procedure", "record", "h1", "--procedure", "risk_removal", "--step", "county_announcement",
                "--actor", "县", "--db", db)
    assert wrong.exit_code != 0
    for day, step in enumerate(steps, start=1):
        ok = run("procedure", "record", "h1", "--procedure", "risk_removal", "--step", step, "--actor", "村委",
                 "--date", f"2023-12-0{day}", "--db", db, "--lang", "en")
        assert ok.exit_code == 0, ok.output
    assert "procedure complete" in ok.output


def test_a_2023_watchlist_has_sudden_hardship_and_no_2020_scale(county2023, tmp_path):
    source, _ = county2023
    db = str(tmp_path / "audit.db")
    stored = run("score", source, "--year", 2023, "--province", "云南省", "-o", tmp_path / "d.csv", "--store",
                 "--db", db)
    assert stored.exit_code == 0, stored.output
    out = tmp_path / "watch.xlsx"
    assert run("watchlist", "-o", out, "--db", db, "--lang", "en").exit_code == 0
    watched = read_table(out)
    assert "sudden_hardship" in set(watched["monitoring"])
    scale = pd.read_excel(out, sheet_name="scale", engine="calamine")
    assert scale["check"].str.contains("no scale in force").all()
