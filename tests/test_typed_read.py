"""Fast reading and writing give exactly what the plain per-cell code gives: the bulk (Arrow) pre-filter of
masking, and the typed parsing of contract columns."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import _parse, parse_records
from povertyrules.privacy import SHORTEST, _candidates, mask_frame, mask_text, pseudonym_text

from .conftest import BASE_HOUSEHOLD

#: characters that make and break identity and phone numbers: ASCII and full-width digits, X, separators,
#: a prefix's +, letters (the look-around of the patterns), Chinese text and line breaks
NUMBERISH = st.text(alphabet="0123456789０１２３４５９XxＸｘ +-－　abＡ中\n\u0663", max_size=40)
DIGIT_RUNS = st.builds(lambda a, d, b: a + d + b, NUMBERISH, st.text(alphabet="0123456789", min_size=10, max_size=19),
                       NUMBERISH)
CELLS = st.one_of(NUMBERISH, DIGIT_RUNS, st.just("13812345678"), st.just("11010519491231002X"),
                  st.just("１１０１０５１９４９１２３１００２Ｘ"), st.just("１３８－１２３４－５６７８"))


@settings(max_examples=400, deadline=None)
@given(st.lists(CELLS, min_size=1, max_size=30))
def test_a_cell_left_out_by_the_bulk_filter_is_one_masking_would_not_change(cells):
    found = _candidates(pa.array(cells, pa.string()))
    for cell, candidate in zip(cells, found, strict=True):
        if not candidate or len(cell) < SHORTEST:
            assert mask_text(cell) == cell, cell
            assert pseudonym_text(cell, b"k") == cell, cell


def _mask_every_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Masking as it was before the bulk filter: every text cell through `mask_text` (categories too)."""
    text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])
            or isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return frame.assign(**{c: frame[c].map(lambda v: mask_text(v) if isinstance(v, str) else v) for c in text})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), CELLS), st.one_of(st.none(), CELLS), st.integers(0, 9)),
                min_size=1, max_size=20),
       st.sampled_from(["object", "string", "arrow", "category"]))
def test_a_masked_frame_holds_what_masking_every_cell_gives(rows, kind):
    dtype = {"object": object, "string": "string", "arrow": pd.ArrowDtype(pa.string()), "category": "category"}[kind]
    frame = pd.DataFrame({"a": pd.Series([r[0] for r in rows], dtype=dtype),
                          "b": pd.Series([r[1] for r in rows], dtype=object), "n": [r[2] for r in rows]})
    fast, plain = mask_frame(frame), _mask_every_cell(frame)
    for column in frame.columns:
        shown = [None if pd.isna(v) else v for v in fast[column].astype(object)]
        expected = [None if pd.isna(v) else v for v in plain[column].astype(object)]
        assert shown == expected, column


# --- typed parsing: the Arrow fast path reads every cell exactly as the text path does -------------------------

SPELLED = st.sampled_from([
    "", " ", "  7 ", "7308", "-12.5", "+5", ".5", "5.", "007", "1,234", "1,234.5", "７３０８", "7308元", "3 人",
    "2.5亩", "1e3", "1E-2", "1e400", "-1e400", "9" * 17, "9" * 400, "1000000000000000", "1000000000000001",
    "inf", "nan", "NaN", "-0", "0x10", "12a", "--1", "1.2.3", "是", "否", " 是 ", "有", "无", "TRUE", "True", "t",
    "Y", " yes", "NO", "1", "0", "1.0", "0.0", "√", "×", "-", "poor", "贫困户", " 已脱贫 ", "none", "一般户",
    "因病", "illness", "ILLNESS", "x", "\u3000是", "1\u00a0000", "２０２０", "2020", "1999", "2101", "\n1\n"])
CELL = st.one_of(st.none(), SPELLED, st.integers(-10**6, 10**16).map(str),
                 st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=6))


def _same(fast: pd.Series, text: pd.Series) -> None:
    assert fast.dtype == text.dtype, (fast.dtype, text.dtype)
    pd.testing.assert_series_equal(fast, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(CELL, min_size=1, max_size=40),
       st.sampled_from(["object", "string", "arrow"]))
def test_each_contract_column_is_typed_as_the_text_path_types_it(cells, kind):
    dtype = {"object": object, "string": "string", "arrow": pd.StringDtype("pyarrow")}[kind]
    series = pd.Series(cells, dtype=dtype, index=pd.RangeIndex(5, 5 + len(cells)))
    for column in HOUSEHOLD_COLUMNS:
        if column.kind == "id_number":
            continue  # checked per cell in Python on either path
        fast, text = _parse(series, column), _parse(series, column, fast=False)
        _same(fast[0], text[0])
        _same(fast[1], text[1])
        assert fast[2] == text[2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({c: CELL for c in (
    "members", "net_income", "net_income_last_year", "four_look_score", "ex_vehicle", "food_secure", "year",
    "registered_status", "expenditure_cause", "rigid_expenditure", "able_bodied", "village")}), min_size=1,
    max_size=12), st.lists(st.sampled_from(["h1", "h2", "h3", "", " h4 ", None]), min_size=12, max_size=12))
def test_a_file_read_typed_gives_the_decisions_and_errors_of_the_text_path(rows, ids):
    frame = pd.DataFrame([{**BASE_HOUSEHOLD, **row, "household_id": ids[i]} for i, row in enumerate(rows)])
    frame = frame.astype("string")
    fast, text = parse_records(frame, HOUSEHOLD_COLUMNS, "f.csv", unique="household_id"), \
        parse_records(frame, HOUSEHOLD_COLUMNS, "f.csv", unique="household_id", fast=False)
    pd.testing.assert_frame_equal(fast.valid, text.valid)
    pd.testing.assert_frame_equal(fast.errors, text.errors)
    assert fast.rows == text.rows == len(frame) == len(fast.valid) + fast.errors["row"].nunique()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.fixed_dictionaries({c: CELL for c in (
    "members", "net_income", "four_look_score", "ex_vehicle", "registered_status", "village")}), min_size=1,
    max_size=12), st.lists(st.sampled_from(["h1", "h2", "", None]), min_size=12, max_size=12), st.booleans())
def test_a_frame_given_away_is_typed_as_one_kept_and_left_without_its_contract_columns(rows, ids, chinese):
    from povertyrules.datasets.synth import chinese_headers

    frame = pd.DataFrame([{**BASE_HOUSEHOLD, **row, "household_id": ids[i]} for i, row in enumerate(rows)])
    frame = (chinese_headers(frame) if chinese else frame).astype("string").assign(extra="kept")
    frame.index = pd.RangeIndex(3, 3 + len(frame))  # any index: positions count
    kept = parse_records(frame.copy(), HOUSEHOLD_COLUMNS, "f.csv", unique="household_id")
    given = parse_records(frame, HOUSEHOLD_COLUMNS, "f.csv", unique="household_id", consume=True)
    pd.testing.assert_frame_equal(given.valid, kept.valid)
    pd.testing.assert_frame_equal(given.errors, kept.errors)
    assert given.rows == kept.rows == len(rows)
    assert list(frame.columns) == ["extra"]  # the text of every contract column let go, the rest left as it was


@settings(max_examples=30, deadline=None)
@given(st.lists(st.fixed_dictionaries({c: CELL for c in (
    "members", "net_income", "four_look_score", "ex_vehicle", "registered_status", "village", "year")}),
    min_size=1, max_size=12), st.lists(st.sampled_from(["h1", "h2", "", None]), min_size=12, max_size=12))
def test_columns_typed_by_threads_give_the_frame_and_errors_typed_in_line(rows, ids):
    from unittest import mock

    from povertyrules.model import records

    frame = pd.DataFrame([{**BASE_HOUSEHOLD, **row, "household_id": ids[i]} for i, row in enumerate(rows)])
    frame = frame.astype("string")
    in_line = parse_records(frame, HOUSEHOLD_COLUMNS, "f.csv", unique="household_id")
    with mock.patch.object(records, "THREADED_FROM", 0), mock.patch.object(records, "TYPING_AHEAD", 1):
        threaded = parse_records(frame.copy(), HOUSEHOLD_COLUMNS, "f.csv", unique="household_id", consume=True)
    pd.testing.assert_frame_equal(threaded.valid, in_line.valid)
    pd.testing.assert_frame_equal(threaded.errors, in_line.errors)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.fixed_dictionaries({c: CELL for c in (
    "members", "net_income", "net_income_last_year", "four_look_score", "ex_vehicle", "food_secure", "year",
    "registered_status", "rigid_expenditure", "expenditure_cause")}), min_size=1, max_size=10))
def test_scoring_a_file_typed_or_as_text_gives_the_same_decisions_and_errors(rows):
    from unittest import mock

    from povertyrules import scoring

    frame = pd.DataFrame([{**BASE_HOUSEHOLD, **row, "household_id": f"h{i}"} for i, row in enumerate(rows)])
    frame = frame.astype("string")
    typed = scoring.score(frame, year=2020, file="in.csv")
    with mock.patch.object(scoring, "parse_records", lambda *a, **k: parse_records(*a, **k, fast=False)):
        text = scoring.score(frame, year=2020, file="in.csv")
    pd.testing.assert_frame_equal(typed.decisions, text.decisions)
    pd.testing.assert_frame_equal(typed.errors, text.errors)
    assert typed.rows == len(typed.decisions) + typed.error_rows == len(frame)


def test_a_contract_csv_sets_aside_totals_signatures_and_blank_lines_showing_their_first_cells(tmp_path, book):
    from povertyrules.layouts.prepare import account, prepare

    path = tmp_path / "c.csv"
    path.write_text("户编号,家庭人口,家庭年纯收入,四看法评分\n"
                    "h1,2,3000,50\n"
                    ",,,\n"
                    "h2,3,x元,70\n"
                    ",合计,5,\n"
                    ",填表人：张三,,\n", encoding="utf-8")
    prepared = prepare(path, book)
    assert list(prepared.rows) == [2, 4]
    assert list(prepared.skipped["row"]) == [3, 5, 6]
    assert list(prepared.skipped["text"]) == ["", "合计 5", "填表人：张三"]
    assert [r.split(" / ")[1] for r in prepared.skipped["reason"]] == ["blank line", "total or subtotal line",
                                                                       "signature, compiler or note line"]
    result = score_prepared(prepared)
    assert list(result.errors["row"]) == [4] and result.errors["column"].tolist() == ["net_income"]
    assert account(prepared, result.decisions, result.errors) == {
        "lines": 5, "households": 1, "decided_lines": 1, "skipped": 3, "error_lines": 1}


def score_prepared(prepared):
    from povertyrules import scoring

    return scoring.score(prepared.frame, year=2020, rows=prepared.rows, file=prepared.file)
