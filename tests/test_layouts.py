"""County files as counties hold them: the four layouts of issue 11 scored as they are, every line accounted
for, and every bad-file kind ending in a clear message."""

from __future__ import annotations

import codecs
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.datasets.layouts import national_export, valid_id, write_layout
from povertyrules.datasets.synth import synth
from povertyrules.errors import InputError
from povertyrules.io.tables import read_table
from povertyrules.lang.rulebook import load_rulebook
from povertyrules.layouts.prepare import account, prepare
from povertyrules.privacy import mask_text as mask_identities
from povertyrules.scoring import score

from .conftest import SAMPLE

runner = CliRunner()
BOOK = load_rulebook()


@pytest.fixture(scope="module")
def county():
    return synth(120, seed=11, bad_rate=0.0, blank_rate=0.0)


@pytest.fixture(scope="module")
def files(county, tmp_path_factory):
    folder = tmp_path_factory.mktemp("layouts")
    return {name: write_layout(county, layout, folder / name, seed=11) for name, layout in (
        ("national.xlsx", "national_export"), ("national.csv", "national_export"),
        ("roster.xlsx", "township_roster"), ("monitoring.xlsx", "monitoring_export"),
        ("four_look.xlsx", "four_look_sheet"))}


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def lines_add_up(output: str) -> tuple[int, int, int, int]:
    found = re.search(r"input lines (\d+) = decided (\d+) \((\d+) households\) \+ skipped (\d+) \+ with errors (\d+)",
                      output)
    assert found, output
    total, decided, _households, skipped, errors = map(int, found.groups())
    assert total == decided + skipped + errors
    return total, decided, skipped, errors


@pytest.mark.parametrize(("name", "layout"), [("national.xlsx", "national_export"), ("national.csv", "national_export"),
                                              ("monitoring.xlsx", "monitoring_export")])
def test_person_row_exports_score_as_they_are_one_decision_per_household(files, tmp_path, name, layout):
    code, output = run("score", "--lang", "en", str(files[name]), "--year", "2020", "-o", str(tmp_path / "out.csv"))
    assert code == 0, output
    assert f"layout: {layout}" in output
    decisions = read_table(tmp_path / "out.csv")
    source = read_table(files[name]) if name.endswith(".csv") else None
    ids = prepare(files[name], BOOK).frame["household_id"]
    assert len(decisions) == ids.nunique() == decisions["household_id"].nunique()
    if source is not None:
        assert len(decisions) == source["户编号"].nunique()
    _total, decided, _skipped, errors = lines_add_up(output)
    assert errors == 0 and decided > len(decisions)  # person lines, several per household


def test_per_capita_income_agrees_with_the_files_own_within_one_yuan(files, tmp_path):
    code, output = run("score", "--lang", "en",
                       str(files["national.csv"]), "--year", "2020", "-o", str(tmp_path / "out.csv"))
    assert code == 0, output
    decisions = read_table(tmp_path / "out.csv").set_index("household_id")
    own = read_table(files["national.csv"]).drop_duplicates("户编号").set_index("户编号")
    ours = pd.to_numeric(decisions["per_capita_income"])
    theirs = pd.to_numeric(own["人均纯收入（元）"]).reindex(ours.index)
    assert (ours - theirs).abs().max() <= 1


def test_household_size_follows_the_annual_count_and_every_difference_with_the_person_rows_is_listed(
        county, tmp_path):
    frame = national_export(county, seed=11, size_changes=0.5)
    prepared_rows = frame.groupby("户编号").size()
    annual = frame.drop_duplicates("户编号").set_index("户编号")["年度家庭人口数"]
    target = tmp_path / "national_sizes.csv"
    frame.to_csv(target, index=False)
    prepared = prepare(target, BOOK)
    sizes = prepared.frame.set_index("household_id")["members"]
    assert (sizes == annual.reindex(sizes.index)).all()
    listed = set(prepared.checks.loc[prepared.checks["check"] == "household_size", "household_id"])
    differ = set(annual.index[annual.to_numpy() != prepared_rows.reindex(annual.index).to_numpy()])
    assert listed == differ and differ


def test_a_roster_with_title_lines_merged_headers_and_a_total_line_scores_with_the_four_look_sheet_joined(
        files, tmp_path):
    out = tmp_path / "roster.xlsx"
    code, output = run("score", "--lang", "en",
                       str(files["roster.xlsx"]), "--join", str(files["four_look.xlsx"]), "--year", "2020",
                       "-o", str(out))
    assert code == 0, output
    assert "layout: township_roster" in output and "four_look_sheet" in output
    decisions = read_table(out)
    assert len(decisions) == 120
    assert {"poor", "not_poor"} <= set(decisions["identification"])  # the joined 四看法 score decides
    skipped = read_table(tmp_path / "roster.skipped.xlsx")
    reasons = " ".join(skipped["reason"])
    assert "标题行" in reasons and "合计" in reasons and "签字" in reasons
    assert lines_add_up(output)[2] == 4  # two title lines, a 合计 line, a signature line
    assert "blanks read as 0" in output  # the ledger's declared default is said


def test_the_roster_reads_yuan_suffixes_and_the_merged_income_group(files):
    prepared = prepare(files["roster.xlsx"], BOOK)
    raw = pd.read_excel(files["roster.xlsx"], header=None, dtype=str, engine="calamine")
    assert raw.astype(str).apply(lambda c: c.str.endswith("元")).to_numpy().any()  # the file has 7308元 cells
    assert prepared.table.header_rows == [3, 4]
    assert "家庭年收入（元）/工资性收入" in prepared.table.headers
    assert prepared.checks.empty  # net income from the components agrees with the roster's 人均纯收入


def test_without_a_four_look_sheet_the_roster_says_once_what_it_cannot_decide(files, tmp_path):
    code, output = run("inspect", str(files["national.xlsx"]))
    assert code == 0, output
    assert "national_export" in output and "✗" in output and "六不评" not in output.split("✗")[0]
    assert not list(tmp_path.iterdir())
    code, output = run("score", "--lang", "en",
                       str(files["national.xlsx"]), "--year", "2020", "-o", str(tmp_path / "o.csv"))
    assert output.count("本表无“统筹考虑“六不评”") == 1


def test_household_fields_that_disagree_between_a_households_rows_are_an_error_naming_the_rows(county, tmp_path):
    frame = national_export(county, seed=11)
    first = frame["户编号"].value_counts().index[0]  # a household of several people
    rows = frame.index[frame["户编号"] == first]
    assert len(rows) > 1
    frame.loc[rows[-1], "纯收入（元）"] = 1.0
    path = tmp_path / "n.csv"
    frame.to_csv(path, index=False)
    prepared = prepare(path, BOOK)
    errors = prepared.errors[prepared.errors["household_id"] == first]
    assert len(errors) == len(rows)  # the disagreement, and every other line of the household
    assert any("不一致" in e and "differs" in e for e in errors["error"])
    assert first not in set(prepared.frame["household_id"])
    result = score(prepared.frame, year=2020, rows=prepared.rows, file=str(path))
    counts = account(prepared, result.decisions, result.errors)
    assert counts["lines"] == counts["decided_lines"] + counts["skipped"] + counts["error_lines"]


def test_a_join_line_that_matches_no_household_is_reported_not_dropped(county, files, tmp_path):
    sheet = pd.read_excel(files["four_look.xlsx"], header=None, dtype=object, engine="calamine")
    sheet.iloc[3, 2] = valid_id("11010119800101123")  # first data line: someone not in the roster
    path = tmp_path / "four.xlsx"
    sheet.to_excel(path, header=False, index=False)
    prepared = prepare(files["roster.xlsx"], BOOK, joins=[path])
    missing = prepared.errors[prepared.errors["file"] == str(path)]
    assert len(missing) == 1 and "未找到对应的户" in missing["error"].iloc[0]
    assert "********" in missing["value"].iloc[0]  # the ID number is masked in the errors file
    assert prepared.joined[0]["matched"] == 119


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
def test_csv_in_every_encoding_chinese_excel_saves_reads_the_same(county, tmp_path, encoding):
    frame = national_export(county, seed=11).head(40)
    path = tmp_path / f"n-{encoding}.csv"
    frame.to_csv(path, index=False, encoding=encoding)
    prepared = prepare(path, BOOK)
    assert prepared.layout.name == "national_export"
    assert set(prepared.frame["village"]) == set(frame["村"])


def test_ragged_rows_and_full_width_and_separated_numbers_are_read(tmp_path):
    text = ("户编号,家庭人口,家庭年纯收入,四看法评分\n"
            "h1,2,\"1,234\",50\n"
            "h2,１,７３０８元\n"  # full-width digits, a yuan suffix, a short row
            "h3,1,3000,40,extra,cells\n")
    path = tmp_path / "ragged.csv"
    path.write_text(text, encoding="gb18030")
    prepared = prepare(path, BOOK)
    result = score(prepared.frame, year=2020, rows=prepared.rows, file=str(path))
    incomes = result.decisions.set_index("household_id")["per_capita_income"]
    assert incomes["h1"] == 617 and incomes["h2"] == 7308 and incomes["h3"] == 3000


def test_an_id_number_stored_as_a_number_is_an_error_on_its_row_never_another_id(county, tmp_path):
    frame = national_export(county, seed=11).head(30)
    number = frame.loc[4, "证件号码"]
    path = tmp_path / "n.xlsx"
    with pd.ExcelWriter(path, engine="xlsxwriter") as writer:
        frame.assign(证件号码=frame["证件号码"].astype(object)).to_excel(writer, index=False)
        writer.sheets["Sheet1"].write_number(5, frame.columns.get_loc("证件号码"), float(number[:17] + "0"))
    prepared = prepare(path, BOOK)
    errors = prepared.errors[prepared.errors["row"] == 6]
    assert len(errors) == 1 and "已丢失" in errors["error"].iloc[0] and "lost" in errors["error"].iloc[0]
    assert frame.loc[4, "户编号"] not in set(prepared.frame["household_id"])


def test_a_bad_check_digit_is_an_error_and_masking_covers_every_written_form():
    good = valid_id("52230119900101123")
    assert mask_identities(good) == "522301********" + good[-4:]
    for text in ("+8613812345678", "138-1234-5678", "139 1234 5678", "522301-19900101-1236", "522301900101123"):
        assert not re.search(r"\d{7,}", mask_identities(text).replace("-", "").replace(" ", "")), text


@pytest.mark.parametrize(("content", "suffix", "message"), [
    (b"", ".csv", "文件为空"),
    (b"PK\x03\x04garbage", ".xlsx", "损坏"),
    (b"<html><table><tr><td>x</td></tr></table></html>", ".xls", "网页"),
    (bytes(range(256)) * 20, ".xlsx", "不是Excel工作簿"),
    (bytes(range(256)) * 20, ".csv", "无法识别文件编码"),
])
def test_a_corrupt_or_mislabelled_file_gets_a_clear_message_and_no_decisions_file(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    code, output = run("score", "--lang", "en", str(path), "--year", "2020", "-o", str(tmp_path / "out.xlsx"))
    assert code == 2, output
    assert "error:" in output and "Traceback" not in output and message in output
    assert not (tmp_path / "out.xlsx").exists()


def test_a_csv_saved_with_an_xls_name_is_read_as_csv(county, tmp_path):
    path = tmp_path / "export.xls"
    national_export(county, seed=11).head(20).to_csv(path, index=False, encoding="gbk")
    assert prepare(path, BOOK).layout.name == "national_export"


def test_a_file_with_no_recognisable_header_names_the_layouts_tried(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    with pytest.raises(InputError) as error:
        prepare(path, BOOK)
    assert "national_export" in error.value.en and "--layout" in str(error.value)
    assert "全县全字段" in error.value.zh and not re.search(r"[a-z]+_[a-z_]+", error.value.zh)  # no layout ids


@pytest.mark.parametrize("dropped", ["家庭年纯收入", "户编号"])
def test_a_county_file_missing_a_header_its_layout_needs_is_told_which(tmp_path, dropped):
    path = tmp_path / "x.csv"
    read_table(SAMPLE).head(10).drop(columns=[dropped]).to_csv(path, index=False)
    with pytest.raises(InputError) as error:
        prepare(path, BOOK)
    assert error.value.column == dropped and f"没有“{dropped}”列" in error.value.zh
    assert not re.search(r"[a-z]+_[a-z_]+", error.value.zh)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), spoil=st.floats(0, 0.3))
def test_person_rows_in_any_order_with_any_bad_cells_give_the_same_decisions_and_every_line_is_accounted(
        county, tmp_path, seed, spoil):
    rng = np.random.default_rng(seed)
    frame = national_export(county, seed=11).head(200)
    bad = rng.random(len(frame)) < spoil
    frame["纯收入（元）"] = frame["纯收入（元）"].astype(object)
    frame.loc[bad, "纯收入（元）"] = "不详"
    shuffled = frame.sample(frac=1, random_state=seed).reset_index(drop=True)
    outcomes = []
    for i, version in enumerate((frame, shuffled)):
        path = tmp_path / f"p{seed}-{i}.csv"
        version.to_csv(path, index=False)
        prepared = prepare(path, BOOK)
        result = score(prepared.frame, year=2020, rows=prepared.rows, file=str(path))
        counts = account(prepared, result.decisions, result.errors)
        assert counts["lines"] == len(version) == counts["decided_lines"] + counts["skipped"] + counts["error_lines"]
        outcomes.append(result.decisions.set_index("household_id")[["identification", "exit", "monitoring"]]
                        .sort_index())
    pd.testing.assert_frame_equal(*outcomes)


def test_a_county_layout_file_can_be_forced(files, tmp_path):
    code, output = run("score", "--lang", "en",
                       str(files["national.xlsx"]), "--layout", "national_export", "--year", "2020", "-o",
                       str(tmp_path / "o.parquet"))
    assert code == 0, output
    code, output = run("score", "--lang", "en", str(files["national.xlsx"]), "--layout", "nope", "--year", "2020", "-o",
                       str(tmp_path / "o.parquet"))
    assert code == 2 and "unknown layout" in output


def test_utf16_without_bom_and_bom_prefixed_csv_decode(tmp_path):
    text = "户编号,家庭人口,家庭年纯收入\nh1,1,3000\n"
    for i, data in enumerate((text.encode("utf-16-le"), codecs.BOM_UTF8 + text.encode())):
        path = tmp_path / f"u{i}.csv"
        path.write_bytes(data)
        prepared = prepare(path, BOOK)
        assert list(score(prepared.frame, year=2020).decisions["household_id"]) == ["h1"]


def test_xls_ods_and_a_workbook_named_csv_are_read_by_their_content(county, tmp_path):
    xlwt = pytest.importorskip("xlwt")
    frame = national_export(county, seed=11).head(25).astype(str)
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    sheet.write(0, 0, "示范县防止返贫监测对象信息")  # a title line above the header
    for j, name in enumerate(frame.columns):
        sheet.write(1, j, name)
    for i, row in enumerate(frame.itertuples(index=False)):
        for j, value in enumerate(row):
            sheet.write(i + 2, j, value)
    xls = tmp_path / "export.xls"
    book.save(str(xls))
    ods = tmp_path / "export.ods"
    frame.to_excel(ods, index=False, engine="odf")
    named_csv = tmp_path / "export.csv"
    frame.to_excel(named_csv.with_suffix(".xlsx"), index=False)
    named_csv.write_bytes(named_csv.with_suffix(".xlsx").read_bytes())
    for path, header in ((xls, [2]), (ods, [1]), (named_csv, [1])):
        prepared = prepare(path, BOOK)
        assert prepared.layout.name == "national_export", path
        assert prepared.table.header_rows == header
        assert len(prepared.frame) == frame["户编号"].nunique()


def test_a_clerks_gbk_sheet_with_titles_unit_headers_marks_a_total_and_a_signature_scores_every_line(tmp_path):
    lines = [
        "XX县XX乡2019年建档立卡贫困户花名册,,,,,,,,",
        "填报单位：XX乡人民政府（盖章）,,,,填报日期：2019年12月,,,,",
        "序号,乡(镇),村,户 编 号,户主姓名,家庭人口(人),家庭年纯收入(元),四看法评分,有小轿车工程机械或大型农机",
        '1,XX乡,石桥村,5223010001,王明,3,"8,100元",45,×',
        "2,XX乡,石桥村,5223010002,李华,2,７０００,55,√",
        "3,XX乡,石桥村,5223010003,张强,4,12000,72,×",
        "4,XX乡,石桥村,,,,,",
        '合计,,,,,9,"27,100",,',
        "填表人：赵某,,审核人：钱某,,,,,,",
    ]
    path = tmp_path / "roster_gbk.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    code, output = run("score", "--lang", "en", str(path), "--year", "2019", "-o", str(tmp_path / "out.xlsx"))
    assert code == 0, output
    assert lines_add_up(output) == (8, 3, 4, 1)  # 2 titles + 合计 + signature skipped; the id-less line an error
    decisions = read_table(tmp_path / "out.xlsx").set_index("household_id")
    assert decisions.loc["5223010001", "per_capita_income"] == "2700"
    assert decisions.loc["5223010002", "per_capita_income"] == "3500"  # full-width digits
    assert list(decisions["row"]) == ["4", "5", "6"]  # the sheet's own line numbers
    errors = read_table(tmp_path / "out.errors.xlsx")
    assert set(errors["row"]) == {"7"}


def test_an_id_number_with_a_bad_check_digit_is_an_error_on_its_row(county, tmp_path):
    frame = national_export(county, seed=11).head(30)
    good = frame.loc[3, "证件号码"]
    frame.loc[3, "证件号码"] = good[:17] + ("0" if good[17] != "0" else "1")
    path = tmp_path / "n.csv"
    frame.to_csv(path, index=False)
    errors = prepare(path, BOOK).errors
    bad = errors[errors["row"] == 5]
    assert len(bad) == 1 and "校验码" in bad["error"].iloc[0] and "check digit" in bad["error"].iloc[0]
    assert good[:6] in bad["value"].iloc[0] and good[6:14] not in bad["value"].iloc[0]  # masked


def test_a_stored_run_records_how_its_file_was_read(files, tmp_path):
    import json

    from povertyrules.store.database import connect
    from povertyrules.store.runs import get_run

    db = str(tmp_path / "audit.db")
    code, output = run("score", str(files["roster.xlsx"]), "--join", str(files["four_look.xlsx"]), "--year", "2020",
                       "-o", str(tmp_path / "o.csv"), "--store", "--db", db)
    assert code == 0, output
    reading = json.loads(get_run(connect(db), 1).rules_snapshot)["reading"]
    assert reading["layout"] == "township_roster" and reading["header_rows"] == [3, 4]
    assert "wage_income" in reading["blank_as_zero"] and reading["joined"][0]["layout"] == "four_look_sheet"


SIDE_FILE_HEADERS = {
    "zh": {"errors": ["文件", "原表行号", "户编号", "列", "原值", "错误说明"],
           "skipped": ["文件", "原表行号", "跳过原因", "该行内容"],
           "checks": ["文件", "原表行号", "户编号", "按本表计算", "表中数值", "说明"]},
    "en": {"errors": ["row", "household_id", "column", "value", "error", "file"],
           "skipped": ["row", "reason", "text", "file"],
           "checks": ["row", "household_id", "check", "computed", "recorded", "description", "file"]},
}


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_errors_skipped_and_checks_files_have_headers_in_the_runs_language(county, tmp_path, lang, suffix):
    roster = tmp_path / "roster.csv"
    roster.write_text("\n".join([
        "XX县XX乡2019年建档立卡贫困户花名册,,,,,",
        "序号,户编号,户主姓名,家庭人口（人）,工资性收入（元）,四看法评分",
        "1,5223010001,王明,3,8100,45", "2,5223010002,李华,2,很少,55", "合计,,,5,8100,", "填表人：赵某,,,,,"]),
        encoding="utf-8")
    contract = tmp_path / "contract.csv"
    pd.DataFrame({"household_id": ["h1", "h2"], "members": ["2", "x"], "net_income": ["5000", "6000"]}).to_csv(
        contract, index=False)
    national = tmp_path / "national.csv"
    national_export(county, seed=11, size_changes=0.5).to_csv(national, index=False)
    headers = SIDE_FILE_HEADERS[lang]
    for source, kinds in ((roster, ("errors", "skipped")), (contract, ("errors",)), (national, ("checks",))):
        out = tmp_path / f"{source.stem}.out{suffix}"
        code, output = run("score", str(source), "--year", "2019", "--lang", lang, "-o", str(out))
        assert code == 0, output
        for kind in kinds:
            table = read_table(out.with_name(f"{out.stem}.{kind}{suffix}"))
            assert list(table.columns) == headers[kind], (source.name, kind)
    roster_errors = read_table(tmp_path / f"roster.out.errors{suffix}")
    contract_errors = read_table(tmp_path / f"contract.out.errors{suffix}")
    column, error = ("列", "错误说明") if lang == "zh" else ("column", "error")
    # a column is named as the sheet names it; a contract column by its Chinese header for a Chinese reader
    # (the income left unknown by the bad cell is then a blank required value: a contract column)
    assert list(roster_errors[column]) == ["工资性收入（元）", "家庭年纯收入" if lang == "zh" else "net_income"]
    assert list(contract_errors[column]) == (["家庭人口"] if lang == "zh" else ["members"])
    for errors in (roster_errors, contract_errors):  # the message itself is in both languages either way
        assert errors[error].str.contains(r"[\u4e00-\u9fff].* / .*[a-z]").all()
    skipped = read_table(tmp_path / f"roster.out.skipped{suffix}")
    assert list(skipped["原表行号" if lang == "zh" else "row"]) == ["1", "5", "6"]  # title, 合计, signature
    checks = read_table(tmp_path / f"national.out.checks{suffix}")
    assert len(checks) and not checks.apply(lambda c: c.str.fullmatch(r"[a-z]+_[a-z_]+")).any().any() \
        if lang == "zh" else set(checks["check"]) == {"household_size"}


def test_a_total_or_signature_written_in_the_household_id_column_of_a_contract_file_is_skipped(tmp_path):
    from .conftest import households

    path = tmp_path / "county.csv"
    households({}, {}).to_csv(path, index=False)
    with open(path, "a", encoding="utf-8") as out:
        out.write("合计,,,,\n填表人：张三,,,,\n")
    result = CliRunner().invoke(app, ["score", str(path), "-o", str(tmp_path / "d.csv"), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "input lines 4 = decided 2 (2 households) + skipped 2 + with errors 0" in result.output.replace("\n", " ")
    skipped = pd.read_csv(tmp_path / "d.skipped.csv")
    assert skipped["row"].tolist() == [4, 5] and skipped["text"].tolist() == ["合计", "填表人：张三"]


@pytest.mark.parametrize("layout", ["township_roster", "monitoring_export", "four_look_sheet"])
def test_a_sheet_saved_as_csv_by_a_chinese_excel_reads_as_the_workbook_does(county, tmp_path, layout):
    """`datasets synth -o x.csv` writes a titled sheet as Excel saves it (GB18030, a merged header's text in
    its first cell, 合计 and signature lines kept), and it reads to the same table and decisions as the xlsx."""
    as_csv = write_layout(county, layout, tmp_path / "sheet.csv", seed=11)
    as_xlsx = write_layout(county, layout, tmp_path / "sheet.xlsx", seed=11)
    assert as_csv.read_bytes()[:4] != b"PK\x03\x04"  # text, not a workbook under a .csv name
    as_csv.read_bytes().decode("gb18030")
    from_csv, from_xlsx = prepare(as_csv, BOOK), prepare(as_xlsx, BOOK)
    pd.testing.assert_frame_equal(from_csv.frame.drop(columns=["row"], errors="ignore"),
                                  from_xlsx.frame.drop(columns=["row"], errors="ignore"), check_dtype=False)
    if layout == "four_look_sheet":
        return  # (a side sheet: joined to a household table, not scored alone)
    outputs = []
    for source in (as_csv, as_xlsx):
        code, output = run("score", "--lang", "en", str(source), "--year", "2020", "-o",
                           str(tmp_path / f"{source.suffix[1:]}.csv"))
        assert code == 0, output
        _total, decided, skipped, errors = lines_add_up(output)
        assert errors == 0 and decided > 0 and skipped >= 1
        outputs.append(read_table(tmp_path / f"{source.suffix[1:]}.csv"))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
