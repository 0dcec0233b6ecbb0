"""Raw spreadsheet rows → typed frames plus error rows, following the column contract.

Nothing is dropped: a row either comes out typed (``valid``) or is listed in ``errors`` with its spreadsheet
row number (the header is row 1), household id, column, value and a message in Chinese and English.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from povertyrules.errors import InputError
from povertyrules.model.columns import (
    ERROR_COLUMNS,
    FALSE_WORDS,
    TRUE_WORDS,
    Column,
    header_map,
    normalize_header,
)


@dataclass
class Parsed:
    """A typed frame of the rows that could be read, and the error rows of those that could not."""

    valid: pd.DataFrame  # typed contract columns, plus `row` (spreadsheet row number)
    errors: pd.DataFrame  # ERROR_COLUMNS
    rows: int  # input rows


def rename_headers(raw: pd.DataFrame, columns: tuple[Column, ...], file: str) -> pd.DataFrame:
    """Map English or Chinese headers to contract names; unknown headers are kept as they are."""
    return raw.rename(columns=_renamed(raw, columns, file))


def _renamed(raw: pd.DataFrame, columns: tuple[Column, ...], file: str) -> dict[str, str]:
    lookup = header_map(columns)
    renamed: dict[str, str] = {}
    for header in raw.columns:
        column = lookup.get(normalize_header(header))
        if column is None:
            continue
        if column.name in renamed.values():
            raise InputError(f"表头重复：{header}", f"two headers mean the same column: {header}",
                             file=file, column=column.name)
        renamed[header] = column.name
    return renamed


def parse_records(raw: pd.DataFrame, columns: tuple[Column, ...], file: str,
                  optional: frozenset[str] = frozenset(), unique: str | None = None,
                  rows: np.ndarray | None = None, duplicated_elsewhere: Collection[str] = (),
                  fast: bool = True, consume: bool = False) -> Parsed:
    """Type every contract column of `raw`; `optional` lists required columns a caller will derive.

    `rows` gives each row's line in the original sheet (default: the header is line 1, data from line 2).
    `duplicated_elsewhere`: values of `unique` that also occur in another part of the same input (another
    partition of one data set); their rows are duplicates exactly as if both parts were one file.
    `fast=False` reads every cell through the text path (`_parse`); the result is the same.
    `consume`: `raw` is the caller's to give away; each of its contract columns is dropped from it once typed
    (so the text and the typed copy are never both whole in memory), and `raw` is left without them.
    """
    # positions, not labels: a slice, a shuffled or a filtered frame reads exactly like a fresh one
    if consume:  # the same frame object, renamed in place: dropping a column from it frees the column's text
        renamed = _renamed(raw, columns, file)
        raw.columns = [renamed.get(c, c) for c in raw.columns]
        raw.index = pd.RangeIndex(len(raw))
        frame = raw
    else:
        frame = rename_headers(raw, columns, file).reset_index(drop=True)
    for column in columns:
        if column.required and column.name not in frame and column.name not in optional:
            raise InputError(f"缺少必填列“{column.zh}”", f"required column '{column.name}' is missing",
                             file=file, column=column.name)
    rows = pd.Series(np.arange(2, len(frame) + 2) if rows is None else np.asarray(rows, dtype=np.int64),
                     index=frame.index)
    ids = _text(frame[columns[0].name]) if columns[0].name in frame else pd.Series("", index=frame.index)
    typed: dict[str, pd.Series] = {"row": pd.Series(rows.to_numpy(), index=frame.index)}
    problems: list[pd.DataFrame] = []
    present = [column for column in columns if column.name in frame]
    for column, (values, bad, message) in zip(present, _typed(frame, present, fast, unique), strict=True):
        if column.required and column.name not in optional:
            blank = values.isna() & ~bad
            if blank.any():
                problems.append(_problems(rows, ids, column, frame[column.name], blank,
                                          f"必填项“{column.zh}”为空", f"required value '{column.name}' is blank", file))
        if bad.any():
            problems.append(_problems(rows, ids, column, frame[column.name], bad, *message, file))
        typed[column.name] = values
        if consume and column.name != unique:  # (the id's text is shown for duplicates, below)
            del frame[column.name]
    if unique and unique in typed:
        duplicated = pd.Series(_repeated(typed[unique]), index=frame.index)
        if len(duplicated_elsewhere):
            duplicated |= typed[unique].isin(list(duplicated_elsewhere)).fillna(False).astype(bool)
        if duplicated.any():
            column = next(c for c in columns if c.name == unique)
            problems.append(_problems(rows, ids, column, frame[unique], duplicated,
                                      "户编号重复（两行均不计分）", "duplicate id: both rows are left out", file))
    errors = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(columns=list(ERROR_COLUMNS))
    if consume and unique in frame:
        del frame[unique]
    keep = ~typed["row"].isin(set(errors["row"])).to_numpy()
    # the rows without errors, column by column: each typed column is let go once filtered (no second whole copy)
    valid = pd.DataFrame({name: _kept(typed.pop(name), keep) for name in list(typed)}, index=None if keep.all()
                         else pd.RangeIndex(int(keep.sum())))
    return Parsed(valid, errors.sort_values(["row", "column"], kind="stable", ignore_index=True), len(rows))


#: typing a column is mostly Arrow kernels, which release the GIL: from this many rows, columns are typed by
#: `TYPING_THREADS` threads at once (at most `TYPING_AHEAD` columns ahead of the one being checked)
THREADED_FROM, TYPING_THREADS, TYPING_AHEAD = 20_000, 2, 3


def _typed(frame: pd.DataFrame, present: list[Column], fast: bool,
           unique: str | None) -> Iterator[tuple[pd.Series, pd.Series, tuple[str, str]]]:
    """`_parse` of each present column, in their order (text columns stay in Arrow, but for the id, `unique`,
    that other tables are matched on)."""
    if len(frame) < THREADED_FROM:
        for column in present:
            yield _parse(frame[column.name], column, fast, arrow_text=column.name != unique)
        return
    with ThreadPoolExecutor(TYPING_THREADS, thread_name_prefix="typing") as pool:
        pending: deque[Future] = deque()
        for column in present:  # each column's cells taken from `frame` here, in the caller's thread
            pending.append(pool.submit(_parse, frame[column.name], column, fast, column.name != unique))
            if len(pending) > TYPING_AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _kept(values: pd.Series, keep: np.ndarray) -> pd.Series:
    return values if keep.all() else values[keep].reset_index(drop=True)


def _repeated(values: pd.Series) -> np.ndarray:
    """Which cells hold a value (not blank) that another cell holds too, found by hashing in Arrow."""
    encoded = pc.dictionary_encode(_arrow_cells(values))
    indices = np.asarray(pc.fill_null(encoded.indices, -1), dtype=np.int64)
    counts = np.bincount(indices[indices >= 0], minlength=len(encoded.dictionary))
    return (indices >= 0) & (np.append(counts, 0)[indices] > 1)


MAX_CELL = 1e15  # larger magnitudes (and 1e400, read as infinity) are an error on the row, never a value
NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
#: a unit written after a number in a cell (7308元, 3人, 2.5亩), dropped before the number is read
UNIT = r"^([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*(?:元|人|亩|分|口)$"
#: a number as a program writes it (7308, -12.5): every step of `_numbers_from_text` leaves such a cell as it is,
#: so it is cast at once; only the other cells (units, separators, full-width digits, spaces, errors) take the
#: text path
PLAIN_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
_NULL_TEXT = pa.scalar(None, pa.string())


def _arrow_cells(series: pd.Series) -> pa.Array:
    """Cells as Arrow strings, as they are (no copy for Arrow-backed text)."""
    if isinstance(series.dtype, pd.ArrowDtype) and series.dtype.pyarrow_dtype == pa.string():
        cells = series.array.__arrow_array__()  # the text as read (`read_table(..., arrow_text=True)`)
    else:
        cells = pa.array(series.astype("string"), type=pa.string(), from_pandas=True)
    return cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells


def _arrow_text(series: pd.Series | pa.Array) -> pa.Array:
    """Cells as stripped Arrow strings, blank → null."""
    cells = pc.utf8_trim_whitespace(series if isinstance(series, pa.Array) else _arrow_cells(series))
    return pc.if_else(pc.equal(cells, ""), _NULL_TEXT, cells)


def _text(series: pd.Series) -> pd.Series:
    """Cells as stripped text, blank → NA."""
    return pd.Series(_arrow_text(series).to_pandas(types_mapper=pd.ArrowDtype).array, index=series.index,
                     dtype="string")


def _mask(array: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a writable numpy mask, null → False."""
    return np.array(pc.fill_null(array, False), dtype=bool)


def _numbers_from_text(raw: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(numbers, NaN for blank or unreadable cells; mask of unreadable cells): every cell read as text —
    stripped, NFKC (full-width digits → 0-9), ',' separators and a trailing unit dropped, then the grammar
    `NUMBER`, and magnitudes over `MAX_CELL` refused."""
    cells = pc.utf8_normalize(_arrow_text(raw), form="NFKC")
    cells = pc.replace_substring_regex(pc.replace_substring(cells, ",", ""), UNIT, r"\1")
    readable = pc.match_substring_regex(cells, NUMBER)
    numbers = pc.cast(pc.if_else(readable, cells, _NULL_TEXT), pa.float64())
    too_large = pc.fill_null(pc.greater(pc.abs(numbers), MAX_CELL), False)  # 1e400 reads as infinity
    readable = pc.and_(readable, pc.invert(too_large))
    numbers = pc.if_else(too_large, pa.scalar(None, pa.float64()), numbers)
    bad = pc.and_(pc.is_valid(cells), pc.invert(pc.fill_null(readable, False)))
    return np.array(numbers.to_numpy(zero_copy_only=False), dtype=float), _mask(bad)


def _numbers(series: pd.Series, fast: bool = True) -> tuple[pd.Series, pd.Series]:
    """(numbers with NaN for blank or unreadable cells, mask of unreadable cells); ',' separators allowed.
    Typed in Arrow: a `PLAIN_NUMBER` cell is cast directly, the others are read as text
    (`_numbers_from_text`) — the same numbers and the same unreadable cells as reading every cell as text
    (``fast=False``)."""
    raw = _arrow_cells(series)
    if not fast:
        numbers, bad = _numbers_from_text(raw)
    else:
        plain = _mask(pc.ascii_is_decimal(raw))  # digits only, no pattern needed; the pattern for the others
        rest = np.flatnonzero(_mask(pc.is_valid(raw)) & ~plain)
        if len(rest):
            plain[rest] = _mask(pc.match_substring_regex(raw.take(pa.array(rest)), PLAIN_NUMBER))
        numbers = np.array(pc.cast(pc.if_else(plain, raw, _NULL_TEXT), pa.float64())
                           .to_numpy(zero_copy_only=False), dtype=float)  # a writable copy
        with np.errstate(invalid="ignore"):
            large = np.abs(numbers) > MAX_CELL
        bad = large
        numbers[large] = np.nan
        other = np.flatnonzero(_mask(pc.is_valid(raw)) & ~plain)
        if len(other):
            numbers[other], bad[other] = _numbers_from_text(raw.take(pa.array(other)))
    return pd.Series(numbers, index=series.index, dtype=float), pd.Series(bad, index=series.index, dtype=bool)


def _bools(series: pd.Series, fast: bool = True) -> tuple[pd.Series, pd.Series]:
    """(yes/no as a nullable boolean, mask of cells that are neither yes nor no nor blank), each cell stripped and
    lower-cased first. The words are lower-case without spaces, so a cell spelled exactly as one of them is
    found without folding it; only the others are folded (all of them with ``fast=False``)."""
    raw = _arrow_cells(series)
    yes, no = pa.array(sorted(TRUE_WORDS), pa.string()), pa.array(sorted(FALSE_WORDS), pa.string())
    blank = ~_mask(pc.is_valid(raw))
    true, false = np.zeros(len(raw), dtype=bool), np.zeros(len(raw), dtype=bool)
    if fast:  # one look-up in both lists (the words are distinct, `columns.py`)
        found = np.asarray(pc.fill_null(pc.index_in(raw, value_set=pa.concat_arrays([yes, no])), -1))
        true, false = (found >= 0) & (found < len(yes)), found >= len(yes)
    folded_at = np.flatnonzero(~blank & ~true & ~false)
    if len(folded_at):
        folded = pc.utf8_lower(_arrow_text(raw.take(pa.array(folded_at))))
        true[folded_at] = _mask(pc.is_in(folded, value_set=yes))
        false[folded_at] = _mask(pc.is_in(folded, value_set=no))
        blank[folded_at] = ~_mask(pc.is_valid(folded))
    known = true | false
    values = pd.Series(pd.arrays.BooleanArray(true, ~known), index=series.index)
    return values, pd.Series(~known & ~blank, index=series.index, dtype=bool)


def _choices(series: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """(the canonical value as a categorical, mask of cells that are no accepted spelling)."""
    text = _arrow_text(_arrow_cells(series))
    spellings = list(column.choices)
    categories = list(dict.fromkeys(column.choices.values()))
    code_of = np.array([*(categories.index(column.choices[s]) for s in spellings), -1], dtype=np.int64)
    found = pc.index_in(text, value_set=pa.array(spellings, pa.string()))
    known = _mask(pc.is_valid(found))
    codes = code_of[np.asarray(pc.fill_null(found, len(spellings)), dtype=np.int64)]  # -1: blank or unknown
    bad = _mask(pc.is_valid(text)) & ~known
    return (pd.Series(pd.Categorical.from_codes(codes, categories=categories), index=series.index),
            pd.Series(bad, index=series.index, dtype=bool))


_MONTH = re.compile(r"(\d{4})(\d{2})(?:\.0+)?"  # 202303 (or 202303.0 from a number cell)
                    r"|(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?"  # 2023-03, 2023/3, 2023.3, 2023年3月
                    r"(?:\s*[-/.]?\s*\d{1,2}\s*日?)?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")  # a date cell


def _month(text: str) -> float:
    """YYYYMM of a month written as people and spreadsheets write it; NaN where it is no month."""
    found = _MONTH.fullmatch(text)
    if not found:
        return np.nan
    year, month = (found.group(1), found.group(2)) if found.group(1) else (found.group(3), found.group(4))
    return float(int(year) * 100 + int(month)) if 1 <= int(month) <= 12 else np.nan


def _months(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(YYYYMM as numbers, mask of cells that are no month), each distinct text read once."""
    text = _text(series)
    values = text.map({v: _month(v) for v in text.dropna().unique()}).astype("float64")
    return values, (text.notna() & values.isna()).astype(bool)


def _parse(series: pd.Series, column: Column, fast: bool = True,
           arrow_text: bool = False) -> tuple[pd.Series, pd.Series, tuple[str, str]]:
    """(typed values with NA for blanks, mask of unreadable cells, (zh, en) message for them). Text is Python
    text (object), or with `arrow_text` a pandas ``string`` column kept in Arrow.

    Numbers and yes/no are typed in Arrow with a direct path for cells already in their plain form; ``fast=False``
    reads every cell through the text path instead (the same result, checked by tests/test_typed_read.py)."""
    if column.kind == "text":
        text = _arrow_text(_arrow_cells(series))
        if arrow_text:  # kept in Arrow: no Python string per cell
            values = pd.Series(text.to_pandas(types_mapper=pd.ArrowDtype).array, index=series.index, dtype="string")
        else:
            values = pd.Series(np.asarray(text.to_numpy(zero_copy_only=False), dtype=object), index=series.index,
                               dtype=object)
        return values, pd.Series(False, index=series.index), ("", "")
    if column.kind == "id_number":
        from povertyrules.privacy import id_number_problem, normalize_id_number

        text = _text(series)
        cells = text.astype(object).where(text.notna(), None)
        bad = cells.map(lambda v: v is not None and id_number_problem(v) is not None).astype(bool)
        return (cells.map(lambda v: None if v is None else normalize_id_number(v)).where(~bad, None), bad,
                (f"“{column.zh}”无效（GB 11643：出生日期或校验码不符）",
                 f"'{column.name}' is not a valid identity number (GB 11643: birth date or check digit)"))
    if column.kind == "bool":
        values, bad = _bools(series, fast)
        return values, bad, (f"“{column.zh}”须为是/否", f"'{column.name}' must be yes/no (是/否, 1/0, true/false)")
    if column.kind == "choice":
        values, bad = _choices(series, column)
        allowed = " / ".join(dict.fromkeys(column.choices.values()))
        chinese = "、".join(_chinese_spelling(column, v) for v in dict.fromkeys(column.choices.values()))
        return values, bad, (f"“{column.zh}”取值无效（可选：{chinese}）", f"'{column.name}' must be one of {allowed}")
    if column.kind == "month":
        numbers, bad = _months(series)
        zh, en = (f"“{column.zh}”须为年月（如 202303、2023-03 或 2023年3月）",
                  f"'{column.name}' must be a year and month (e.g. 202303, 2023-03 or 2023年3月)")
    else:
        numbers, bad = _numbers(series, fast)
        zh, en = f"“{column.zh}”须为数字", f"'{column.name}' must be a number"
        if column.maximum is None:  # (a bounded column says its bounds below)
            zh, en = f"{zh}（绝对值不超过 {MAX_CELL:g}）", f"{en} (of at most {MAX_CELL:g} in magnitude)"
    if column.kind == "int":
        bad |= numbers.notna() & (numbers != np.floor(numbers))
        zh, en = f"“{column.zh}”须为整数", f"'{column.name}' must be a whole number"
    if column.minimum is not None:
        bad |= numbers < column.minimum
    if column.maximum is not None:
        bad |= numbers > column.maximum
    if column.minimum is not None or column.maximum is not None:
        low = "" if column.minimum is None else f"≥ {column.minimum:g}"
        high = "" if column.maximum is None else f"≤ {column.maximum:g}"
        bounds = " ".join(b for b in (low, high) if b)
        zh, en = f"{zh}（{bounds}）", f"{en} ({bounds})"
    return numbers.where(~bad), bad.fillna(False).astype(bool), (zh, en)


def _problems(rows: pd.Series, ids: pd.Series, column: Column, raw: pd.Series, mask: pd.Series,
              zh: str, en: str, file: str) -> pd.DataFrame:
    mask = mask.fillna(False).astype(bool)
    return pd.DataFrame({
        "row": rows[mask].to_numpy(),
        "household_id": ids[mask].astype(object).where(ids[mask].notna(), "").to_numpy(),
        "column": column.name,
        "value": raw[mask].astype("string").fillna("").to_numpy(),
        "error": f"{zh} / {en}",
        "file": file,
    })


def _chinese_spelling(column: Column, value: str) -> str:
    """The first Chinese spelling the contract accepts for a choice (the value itself where it has none)."""
    return next((k for k, v in column.choices.items() if v == value and any("\u4e00" <= ch <= "\u9fff" for ch in k)),
                value)
