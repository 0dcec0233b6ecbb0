"""The command line, as a county office uses it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.io.tables import read_table
from povertyrules.lang.rulebook import DEFAULT_RULES
from povertyrules.model.columns import DECISION_COLUMNS, ERROR_COLUMNS

from .conftest import SAMPLE

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("score") / "decisions.csv"
    result = run("score", SAMPLE, "-o", out, "--lang", "en", "--reasons", "full")
    assert result.exit_code == 0, result.output
    return out


def test_scoring_the_bundled_sample_writes_decisions_and_errors_that_add_up(scored):
    decisions = pd.read_csv(scored, dtype=str, keep_default_na=False)
    errors = pd.read_csv(scored.with_name("decisions.errors.csv"), dtype=str, keep_default_na=False)
    assert list(decisions.columns[:len(DECISION_COLUMNS)]) == list(DECISION_COLUMNS)
    assert list(errors.columns) == list(ERROR_COLUMNS)
    households = read_table(SAMPLE)
    own_errors = errors[errors["file"] == str(SAMPLE)]
    assert len(decisions) + own_errors["row"].nunique() == len(households) == 2000
    assert set(decisions["identification"]) == {"poor", "not_poor", "excluded", "review"}
    assert {"unstable_exited", "edge", "none"} <= set(decisions["monitoring"])
    assert decisions["reasons"].str.contains(r"ID-2\.2,ID-3 income_below_line").all()
    excluded = decisions[decisions["identification"] == "excluded"]
    assert excluded["reasons"].str.contains(r"ID-2\.3\.\d ex_2_3_\d").all()
    assert decisions["rules_version"].nunique() == 1


def test_the_summary_table_and_accounting_are_printed(tmp_path):
    out = tmp_path / "summary.xlsx"
    result = run("score", SAMPLE, "-o", out, "--lang", "en", "--reasons", "full")
    assert result.exit_code == 0
    assert "identification" in result.output and "unstable_exited" in result.output
    assert "input lines 2000 = decided 2000" not in result.output  # the sample has a few bad rows
    accounting = r"input lines 2000 = decided \d+ \(\d+ households\) \+ skipped 0 \+ with errors \d+"
    assert re.search(accounting, result.output)
    assert read_table(out)["reasons"].str.contains("per-capita income").all()


def test_a_chinese_workbook_reads_naturally_to_a_clerk(tmp_path):
    from python_calamine import CalamineWorkbook

    from povertyrules import load_rules
    from povertyrules.decisions.files import labels

    out = tmp_path / "决定.xlsx"
    assert run("score", SAMPLE, "-o", out, "--reasons", "full").exit_code == 0
    book = load_rules()
    workbook = CalamineWorkbook.from_path(str(out))
    main, reasons, summary = (labels()["decisions_sheet"], labels()["reason_sheet"]["name"],
                              labels()["summary_sheet"]["name"])
    assert workbook.sheet_names == [main, reasons, summary]
    decisions = read_table(out, main)
    headers = labels()["columns"]
    assert list(decisions.columns[:3]) == [headers["household_id"], headers["year"], headers["poverty_line"]]
    assert "trace" not in decisions and headers["trace"] not in decisions
    identification = book.decisions["identification"]
    assert set(decisions[headers["identification"]]) == {identification.label(v, "zh") for v in
                                                         ("poor", "not_poor", "excluded", "review")}
    assert not decisions[headers["monitoring"]].isin(list(book.decisions["monitoring"].values)).any()
    assert decisions[headers["clauses"]].str.startswith("ID-3").all()
    cited = read_table(out, reasons)
    assert len(cited) > len(decisions) and set(cited[labels()["reason_sheet"]["columns"]["household_id"]]) == \
        set(decisions[headers["household_id"]])
    totals = read_table(out, summary).set_index(labels()["summary_sheet"]["township"])
    total = labels()["summary_sheet"]["total"]["zh"]
    assert int(totals.loc[total, labels()["summary_sheet"]["households"]]) == len(decisions)
    poor = f"{identification.description.zh}·{identification.label('poor', 'zh')}"
    poor_rows = decisions[headers["identification"]] == identification.label("poor", "zh")
    assert int(totals.loc[total, poor]) == poor_rows.sum()
    assert not totals.index.isna().any() and "" not in totals.index  # a blank township is named (未填)
    internal = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b(?:poor|not_poor|excluded|eligible|not_eligible|edge|none)\b")
    for name in (main, reasons):  # every cell a clerk reads: Chinese words, no rule ids, column names or codes
        cells = [str(c) for row in workbook.get_sheet_by_name(name).to_python() for c in row if isinstance(c, str)]
        found = {m for c in cells for m in internal.findall(c)}
        assert not found, (name, sorted(found)[:8])
    missing = decisions[headers["missing_columns"]].dropna()
    assert len(missing) and missing.str.contains("[\u4e00-\u9fff]").all()


def test_english_output_keeps_every_contract_column_and_its_codes(tmp_path):
    out = tmp_path / "d.parquet"
    assert run("score", SAMPLE, "-o", out, "--lang", "en").exit_code == 0
    decisions = pd.read_parquet(out)
    assert list(decisions.columns[:len(DECISION_COLUMNS)]) == list(DECISION_COLUMNS)
    assert set(decisions["identification"]) == {"poor", "not_poor", "excluded", "review"}
    assert decisions["trace"].str.fullmatch("[0-9a-f]+").all() and decisions["clauses"].notna().all()
    assert (decisions["reasons"].str.count(";") >= 2).all()  # one main line per decision (and ID-1's)


def test_a_what_if_parameter_changes_the_watchlist(scored, tmp_path):
    out = tmp_path / "what_if.csv"
    assert run("score", SAMPLE, "-o", out, "--lang", "en", "--set", "monitoring_multiplier=2.0").exit_code == 0
    base = pd.read_csv(scored, dtype=str)
    wider = pd.read_csv(out, dtype=str)
    assert (wider["monitoring"] != "none").sum() > (base["monitoring"] != "none").sum()
    assert wider["rules_version"][0] != base["rules_version"][0]


def test_a_missing_input_file_is_a_clear_error(tmp_path):
    result = run("score", tmp_path / "nope.xlsx", "-o", tmp_path / "o.csv")
    assert result.exit_code == 2 and "file not found" in result.output


def test_rules_check_passes_on_the_shipped_rules():
    result = run("rules", "check")
    assert result.exit_code == 0, result.output
    assert "rules check passed" in result.output


def broken_copy(tmp_path: Path, change) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, target)
    path = target / "identification.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target


def test_rules_check_fails_on_a_rule_that_does_not_parse(tmp_path):
    target = broken_copy(tmp_path, lambda d: d["criteria"][0].update(when="per_capita_income <"))
    result = run("rules", "check", "--rules", target)
    assert result.exit_code == 1
    assert "income_below_line" in result.output and "syntax error" in result.output


def test_rules_check_fails_on_a_clause_that_is_not_in_the_policy_text(tmp_path):
    target = broken_copy(tmp_path, lambda d: d["criteria"][0].update(clause=["ID-9.9"]))
    result = run("rules", "check", "--rules", target)
    assert result.exit_code == 1 and "ID-9.9" in result.output


def test_rules_check_fails_when_parameters_do_not_cover_the_years_asked():
    result = run("rules", "check", "--years", "2019-2021")  # from 2021 the monitoring line is the province's
    assert result.exit_code == 1 and "province_monitoring_line has no value in force for year(s) 2021" in result.output


def test_rules_check_accepts_a_county_override_that_covers_2021(tmp_path):
    override = tmp_path / "province.yaml"
    override.write_text("name: 某省\nparameters:\n  province_monitoring_line:\n"
                        "    2021-01-01: {value: 6100, source: 某省标准}\n", encoding="utf-8")
    result = run("rules", "check", "--years", "2019-2021", "--override", override)
    assert result.exit_code == 0, result.output


def test_rules_test_runs_the_case_files():
    result = run("rules", "test")
    assert result.exit_code == 0 and " 0 failed" in result.output


def test_datasets_synth_is_deterministic_and_realistic(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((a, 1), (b, 1), (c, 2)):
        assert run("datasets", "synth", "--households", 300, "--seed", seed, "-o", path).exit_code == 0
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    frame = read_table(a)
    assert "户编号" in frame.columns and frame["乡镇"].nunique() >= 3
    members = read_table(tmp_path / "a.members.csv")
    assert set(members["户编号"]) <= set(frame["户编号"])
    assert members["情形"].isin(["嫁出"]).any()


def test_the_bundled_sample_is_what_the_generator_makes(tmp_path):
    fresh = tmp_path / "sample.xlsx"
    assert run("datasets", "synth", "--households", 2000, "--seed", 2020, "-o", fresh).exit_code == 0
    pd.testing.assert_frame_equal(read_table(fresh), read_table(SAMPLE))


def no_year_sheet(tmp_path: Path) -> Path:
    from .conftest import households

    path = tmp_path / "county.csv"
    households({}, {"net_income": "6000", "four_look_score": "40"}).drop(columns=["year"]).to_csv(path, index=False)
    return path


def test_scoring_a_year_with_no_line_stops_with_a_message_in_both_languages(tmp_path):
    out = tmp_path / "o.csv"
    result = run("score", no_year_sheet(tmp_path), "-o", out, "--year", "2023")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    text = " ".join(result.output.split())
    # from 2021 the line a run needs is the province's monitoring line (M21-4)
    assert "2023" in text and "province_monitoring_line" in text and "没有取值" in text and "has no value" in text
    assert "--override" in text and "--set province_monitoring_line=" in text and "--province" in text
    assert "Traceback" not in result.output and not out.exists()


def test_a_county_line_for_the_year_lets_the_run_go_ahead(tmp_path):
    out = tmp_path / "o.csv"
    result = run("score", no_year_sheet(tmp_path), "-o", out, "--lang", "en", "--year", "2023", "--set",
                 "poverty_line=4500", "--province", "云南省")
    assert result.exit_code == 0, result.output
    decisions = pd.read_csv(out, dtype=str)
    assert set(decisions["poverty_line"].astype(float)) == {4500.0}
    assert list(decisions["identification"]) == ["not_poor", "poor"]


def test_rules_check_passes_for_every_year_from_2013():
    result = run("rules", "check", "--years", "2013-2020")
    assert result.exit_code == 0, result.output


def test_the_earlier_chinese_headers_are_still_read(tmp_path):
    from .conftest import households

    frame = households({"household_id": "a", "net_income": "6000", "four_look_score": "40", "ex_public_employee": "是",
                        "ex_vehicle": "否"})
    old = frame.rename(columns={"ex_public_employee": "有财政供养或国企稳定工资人员",
                                "ex_vehicle": "有小轿车工程机械或大型农机"})
    new = frame.rename(columns={"ex_public_employee": "有在国家机关或国有企事业单位工作且有稳定工资收入人员",
                                "ex_vehicle": "有小轿车（含面包车）工程机械或大型农机具"})
    from povertyrules import score

    for sheet in (old, new):
        decided = score(sheet, reasons="full").decisions.iloc[0]
        assert decided["identification"] == "excluded"
        assert "在国家机关或国有企事业单位工作且有稳定工资收入" in decided["reasons"]
        assert "财政供养" not in decided["reasons"]


@pytest.mark.parametrize(("value", "shown"), [("abc", "“abc”不是数字"), ("1e999", "取值无效")])
def test_a_bad_what_if_value_is_one_bilingual_line_not_a_validation_dump(tmp_path, value, shown):
    result = run("score", SAMPLE, "-o", tmp_path / "d.csv", "--set", f"monitoring_multiplier={value}")
    assert result.exit_code == 2 and shown in result.output and "monitoring_multiplier" in result.output
    assert "pydantic" not in result.output and "validation error" not in result.output
    assert len(result.output.strip().splitlines()) <= 3


@pytest.mark.parametrize(("lang", "sheet"), [("zh", "无法读取的行"), ("en", "errors")])
def test_the_errors_workbook_is_named_in_the_readers_language_with_its_header_frozen(tmp_path, lang, sheet):
    import openpyxl

    assert run("score", SAMPLE, "-o", tmp_path / "d.xlsx", "--lang", lang).exit_code == 0
    book = openpyxl.load_workbook(tmp_path / "d.errors.xlsx")
    assert book.sheetnames == [sheet] and book.active.freeze_panes == "A2" and book.active.auto_filter.ref


@pytest.mark.parametrize("command", [["score", str(SAMPLE), "-o", "x.csv"], ["explain", "h1"], ["核查"]])
def test_a_language_other_than_zh_or_en_is_refused_not_read_as_english(command, tmp_path):
    result = run(*command, "--lang", "fr", "--db", str(tmp_path / "none.db")) if command[0] != "score" else \
        run(*command, "--lang", "fr")
    assert result.exit_code == 2 and "zh 或 en" in result.output
    assert not (tmp_path / "none.db").exists()
