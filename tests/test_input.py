"""Reading county spreadsheets: Chinese or English headers, real xlsx files, and bad input that is reported
with row and column while every row is accounted for."""

from __future__ import annotations

import pandas as pd
import pytest

from povertyrules import score
from povertyrules.datasets.synth import chinese_headers
from povertyrules.errors import InputError
from povertyrules.io.tables import member_sheet, read_table, write_table
from povertyrules.model.columns import HOUSEHOLD_COLUMNS, normalize_header

from .conftest import BASE_HOUSEHOLD, households


def accounted(result) -> bool:
    return result.rows == len(result.decisions) + result.error_rows


def test_chinese_headers_give_the_same_decisions_as_english_ones():
    frame = households({"net_income": "6000", "four_look_score": "40"}, {}, {"registered_status": "exited",
                                                                          "net_income": "10000"})
    english = score(frame)
    chinese = score(chinese_headers(frame))
    columns = ["household_id", "identification", "exit", "monitoring", "monitoring_triggers", "reasons"]
    pd.testing.assert_frame_equal(english.decisions[columns], chinese.decisions[columns])
    assert list(english.decisions["identification"]) == ["poor", "not_poor", "not_poor"]


def test_headers_match_after_folding_spaces_and_full_width_punctuation():
    assert normalize_header(" 家庭年纯收入（ ） ") == normalize_header("家庭年纯收入")
    assert normalize_header("Household_ID") == normalize_header("household id")
    frame = households({}).rename(columns={"net_income": " 家庭年纯收入 ", "members": "家庭人口："})
    assert len(score(frame).decisions) == 1


@pytest.mark.parametrize(("spelling", "expected"), [("是", "excluded"), ("有", "excluded"), ("TRUE", "excluded"),
                                                    ("1", "excluded"), ("Y", "excluded"), ("否", "poor"),
                                                    ("无", "poor"), ("0", "poor"), ("n", "poor")])
def test_boolean_spellings(spelling, expected):
    frame = households({"net_income": "6000", "four_look_score": "40", "ex_vehicle": spelling})
    assert score(frame).decisions["identification"][0] == expected


def test_a_wrong_type_is_an_error_naming_row_column_and_value_in_both_languages():
    frame = households({}, {"net_income": "三千"}, {"ex_vehicle": "maybe"}, {"members": "2.5"})
    result = score(frame, file="county.xlsx")
    errors = result.errors.set_index("household_id")
    assert errors.loc["h2", "row"] == 3 and errors.loc["h2", "column"] == "net_income"
    assert errors.loc["h2", "value"] == "三千"
    assert "须为数字" in errors.loc["h2", "error"] and "must be a number" in errors.loc["h2", "error"]
    assert errors.loc["h3", "column"] == "ex_vehicle" and errors.loc["h4", "column"] == "members"
    assert set(errors["file"]) == {"county.xlsx"}
    assert list(result.decisions["household_id"]) == ["h1"]
    assert accounted(result)


def test_a_duplicate_id_is_an_error_for_both_rows():
    frame = households({"household_id": "x"}, {"household_id": "y"}, {"household_id": "x"})
    result = score(frame)
    duplicates = result.errors[result.errors["column"] == "household_id"]
    assert sorted(duplicates["row"]) == [2, 4]
    assert list(result.decisions["household_id"]) == ["y"] and accounted(result)


def test_a_missing_required_column_is_a_clear_file_error():
    frame = households({}).drop(columns=["net_income"])
    with pytest.raises(InputError) as caught:
        score(frame, file="county.csv")
    assert caught.value.column == "net_income" and caught.value.file == "county.csv"
    assert "家庭年纯收入" in str(caught.value) and "required column" in str(caught.value)


def test_a_row_without_a_year_is_an_error_unless_one_is_given():
    frame = households({"year": ""}, {})
    assert score(frame).errors["column"].tolist() == ["year"]
    assert len(score(frame, year=2019).decisions) == 2


def test_out_of_range_values_are_errors():
    frame = households({"four_look_score": "101"}, {"members": "0"}, {"rigid_expenditure": "-5"})
    result = score(frame)
    assert sorted(result.errors["column"]) == ["four_look_score", "members", "rigid_expenditure"]
    assert result.decisions.empty and accounted(result)


def test_choice_columns_accept_chinese_and_english_values():
    frame = households({"registered_status": "已脱贫", "net_income": "10000"}, {"registered_status": "exited",
                                                                              "net_income": "10000"},
                       {"registered_status": "退休"})
    result = score(frame)
    assert list(result.decisions["monitoring"]) == ["unstable_exited", "unstable_exited"]
    assert result.errors["column"].tolist() == ["registered_status"]


def test_real_xlsx_with_chinese_headers_and_a_members_sheet_round_trips(tmp_path):
    path = tmp_path / "county.xlsx"
    members = pd.DataFrame([
        {"户编号": "h1", "成员编号": "m1", "在户口簿": "是", "常住": "是", "情形": ""},
        {"户编号": "h1", "成员编号": "m2", "在户口簿": "是", "常住": "否", "情形": "嫁出"},
        {"户编号": "h1", "成员编号": "m3", "在户口簿": "否", "常住": "否", "情形": "义务兵"},
        {"户编号": "ghost", "成员编号": "m9", "在户口簿": "是", "常住": "是", "情形": ""},
    ])
    write_table(chinese_headers(households({"members": "", "net_income": "7000", "four_look_score": "50"})), path,
                sheet="households", sheets={"members": members})
    frame, sheet = read_table(path), member_sheet(path)
    assert sheet is not None and len(sheet) == 4
    result = score(frame, members=sheet, file=str(path), members_file=f"{path}#members")
    row = result.decisions.iloc[0]
    assert row["per_capita_income"] == 3500  # m1 and the conscript count; the married-out daughter does not
    assert "ID-1 家庭人口计入 2 / 3 人" in row["reasons"] and row["identification"] == "poor"
    ghost = result.errors[result.errors["household_id"] == "ghost"]
    assert ghost["file"].tolist() == [f"{path}#members"]
    assert result.error_rows == 0 and accounted(result)


def test_csv_and_parquet_outputs_read_back(tmp_path):
    result = score(households({}, {"net_income": "6000"}))
    for suffix in (".csv", ".parquet", ".xlsx"):
        path = write_table(result.decisions, tmp_path / f"d{suffix}")
        back = read_table(path)
        assert list(back["household_id"]) == ["h1", "h2"] and "reasons" in back


def test_an_unsupported_file_type_is_a_clear_error(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("a")
    with pytest.raises(InputError, match="unsupported file type"):
        read_table(path)


def test_every_contract_column_has_a_chinese_header():
    assert all(c.zh for c in HOUSEHOLD_COLUMNS)
    assert set(BASE_HOUSEHOLD) <= {c.name for c in HOUSEHOLD_COLUMNS}


@pytest.mark.parametrize(("cell", "month"), [("202303", 202303), ("2023-03", 202303), ("2023/3", 202303),
                                             ("2023年3月", 202303), ("2023-03-01 00:00:00", 202303),
                                             ("202313", None), ("2023-00", None), ("三月", None)])
def test_the_month_monitoring_began_is_read_as_people_write_it_and_an_impossible_month_is_an_error(cell, month):
    from povertyrules.model.columns import HOUSEHOLD_COLUMNS
    from povertyrules.model.records import parse_records

    from .conftest import households

    parsed = parse_records(households({"year": "2023", "monitoring_start": cell}), HOUSEHOLD_COLUMNS, "x.csv")
    if month is None:
        assert len(parsed.valid) == 0 and parsed.errors["column"].tolist() == ["monitoring_start"]
        assert "年月" in parsed.errors["error"].iloc[0] and "202303" in parsed.errors["error"].iloc[0]
    else:
        assert len(parsed.errors) == 0 and parsed.valid["monitoring_start"].tolist() == [month]


@pytest.mark.parametrize("cell", ["1e400", "99999999999999999999", "-1E+300"])
def test_a_number_too_large_to_be_real_is_an_error_that_says_so(cell):
    from povertyrules.model.columns import HOUSEHOLD_COLUMNS
    from povertyrules.model.records import parse_records

    from .conftest import households

    parsed = parse_records(households({"net_income": cell}), HOUSEHOLD_COLUMNS, "x.csv")
    assert len(parsed.valid) == 0 and parsed.errors["column"].tolist() == ["net_income"]
    assert "绝对值不超过" in parsed.errors["error"].iloc[0] and "in magnitude" in parsed.errors["error"].iloc[0]
