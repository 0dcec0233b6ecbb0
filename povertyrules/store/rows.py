"""A decision row as the audit store keeps it, and read back.

A run stored whole (`povertyrules.store.runs.record_run`) keeps, per household, its typed input row as a JSON
**array** of values (``[2020,"示范县",3.0,true,null,…]``) in the order of the columns named once in the run's
`codebook`, and its one-line main reason as a number: the position of its text in the codebook's list of
reasons (a run has a few dozen different ones). The codebook is part of the run's record, so it is sealed and
chained with it (`povertyrules.store.integrity`):

    {"inputs": ["household_id", "county", …], "reasons": ["ID-3 …", …]}

A run with more than `MAX_REASONS` different reasons (one naming each household's member rows) keeps each row's
reason as text and has no ``"reasons"``. Runs stored before codebooks, and runs stored in parts by several
processes (`povertyrules.dask_scoring`), have none: each row keeps its input as a JSON object (``{"column":
value, …}``) and its reason as text. A row says which it is by its first character; the readers here take both,
so every reader of the store (explain, the web pages, exports, reports, monitoring) sees input rows as objects
and reasons as text whichever way they were stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm.attributes import set_committed_value

#: a run codes its reasons when it has at most this many different ones (each then stored once, in the run)
MAX_REASONS = 256


# -- writing -------------------------------------------------------------------------------------------------

def make_codebook(columns: Sequence[str], reasons: pa.Array | pa.ChunkedArray) -> tuple[dict, pa.Array]:
    """The run's codebook (its input columns; its reasons' texts, when few) and the reasons as rows keep them."""
    book: dict = {"inputs": [str(c) for c in columns]}
    if isinstance(reasons, pa.ChunkedArray):
        reasons = reasons.combine_chunks()
    encoded = pc.dictionary_encode(reasons.cast(pa.string()))
    if len(encoded.dictionary) > MAX_REASONS:
        return book, reasons
    book["reasons"] = encoded.dictionary.to_pylist()
    return book, pc.cast(encoded.indices, pa.string())


def json_arrays(frame: pd.DataFrame) -> pa.Array:
    """Each row of `frame` as a JSON array of its values in column order (the values as `json_records` writes
    them), built column by column in Arrow."""
    if not len(frame.columns):
        return pa.array(["[]"] * len(frame), pa.string())
    values = [_json_values(frame[name]) for name in frame.columns]
    return pc.binary_join_element_wise("[", pc.binary_join_element_wise(*values, ","), "]", "")


def json_records(frame: pd.DataFrame) -> pa.Array:
    """Each row of `frame` as a JSON object (``{"column": value, …}``, text unescaped as in
    ``ensure_ascii=False``; numbers of a float column with a fraction or exponent, ``4.0`` not ``4``; a blank
    or non-finite number as null), built column by column in Arrow. `json.loads` of a line gives the row's
    values, floats exactly (their shortest round-trip form)."""
    if not len(frame.columns):
        return pa.array(["{}"] * len(frame), pa.string())
    parts: list = []
    for index, name in enumerate(frame.columns):
        parts += [("{" if index == 0 else ",") + json.dumps(str(name), ensure_ascii=False) + ":",
                  _json_values(frame[name])]
    return pc.binary_join_element_wise(*parts, "}", "")


def _json_values(column: pd.Series) -> pa.Array:
    """One column's values as JSON text ("null" for a blank)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        values = pa.array(column, type=pa.bool_(), from_pandas=True)
        return pc.fill_null(pc.if_else(values, "true", "false"), "null")
    if pd.api.types.is_integer_dtype(dtype):
        return pc.fill_null(pc.cast(pa.array(column, from_pandas=True), pa.string()), "null")
    if pd.api.types.is_float_dtype(dtype):
        return _json_floats(column.to_numpy(dtype=float, na_value=np.nan))
    text = _text(column)
    if text is None:  # numbers or other values in a text column: as json writes them
        return pa.array([_json_value(v) for v in column], pa.string())
    if pc.count_distinct(text.slice(0, 4000)).as_py() * 4 <= min(len(text), 4000):  # (places, causes: each once)
        encoded = pc.dictionary_encode(text)
        return pc.fill_null(_json_texts(encoded.dictionary).take(encoded.indices), "null")
    return pc.fill_null(_json_texts(text), "null")


def _json_texts(text: pa.Array) -> pa.Array:
    """Text as JSON strings (null stays null)."""
    if not pc.any(pc.match_substring_regex(text, r'[\\"\x00-\x1f]')).as_py():  # (nothing to escape)
        return pc.binary_join_element_wise('"', text, '"', "")
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = np.flatnonzero(pc.fill_null(pc.match_substring_regex(text, r"[\x00-\x1f]"), False))
    if len(control):  # (a control character: escaped as json escapes it)
        values = quoted.to_pylist()
        for at in control:
            values[at] = json.dumps(text[int(at)].as_py(), ensure_ascii=False)
        quoted = pa.array(values, pa.string())
    return quoted


def _text(column: pd.Series) -> pa.Array | None:
    """A text (or category of text) column as an Arrow string array; None if it holds other values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    try:
        text = pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text  # (an Arrow-backed column)


def _json_floats(numbers: np.ndarray) -> pa.Array:
    """Floats as Python's json writes them (shortest round-trip digits, ``4.0`` not ``4``); NaN and ±inf as null.

    Whole numbers below 10¹⁶ (most of a county's figures) are written as integers and ``.0``, as `repr` does."""
    finite = np.isfinite(numbers)
    with np.errstate(invalid="ignore"):
        small = finite & (np.abs(numbers) < 1e16) & ~((numbers == 0) & np.signbit(numbers))  # (−0.0 as floats)
        whole = small & (numbers == np.trunc(numbers))
    if whole.all():
        return pc.binary_join_element_wise(pc.cast(pa.array(numbers.astype(np.int64)), pa.string()), ".0", "")
    text = pc.cast(pa.array(numbers, mask=~finite | whole), pa.string())  # (Arrow writes 1e10 as "1e+10")
    if whole.any():
        integers = pa.array(np.where(whole, numbers, 0).astype(np.int64), mask=~whole)
        text = pc.coalesce(pc.binary_join_element_wise(pc.cast(integers, pa.string()), ".0", ""), text)
    negative_zero = (numbers == 0) & np.signbit(numbers)
    if negative_zero.any():  # (Arrow writes "-0")
        text = pc.if_else(pa.array(negative_zero), "-0.0", text)
    return pc.fill_null(text, "null")


def _json_value(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or value is pd.NA:
        return "null"
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value, ensure_ascii=False, default=str)


# -- reading -------------------------------------------------------------------------------------------------

def codebook_of(run) -> dict | None:
    """A run's codebook (`Run.codebook`, or the text of it), or None for a run stored without one."""
    text = run if isinstance(run, str) or run is None else getattr(run, "codebook", None)
    return json.loads(text) if text else None


def input_records(codebook: dict | None, texts: Iterable[str]) -> list[dict]:
    """Stored input rows as ``{column: value}`` dicts, whichever way each was stored."""
    keys = (codebook or {}).get("inputs")
    out = []
    for text in texts:
        value = json.loads(text)
        if isinstance(value, list):
            if keys is None or len(keys) != len(value):
                raise ValueError("a stored input row has no column list in its run's codebook / 输入行无法读取")
            value = dict(zip(keys, value, strict=True))
        out.append(value)
    return out


def input_frame(codebook: dict | None, texts: Sequence[str], index=None) -> pd.DataFrame:
    """Stored input rows as a DataFrame (one column per stored column, as from the rows' dicts)."""
    texts = list(texts)
    keys = (codebook or {}).get("inputs")
    if keys is not None and texts and all(t.startswith("[") for t in texts):
        values = [json.loads(t) for t in texts]
        if any(len(v) != len(keys) for v in values):
            raise ValueError("a stored input row does not match its run's column list / 输入行与列清单不符")
        return pd.DataFrame(values, columns=keys, index=index)
    return pd.DataFrame(input_records(codebook, texts), index=index)


def reasons_texts(codebook: dict | None, values: Sequence) -> list:
    """The stored reasons as text: a run's codes looked up in its codebook, texts kept as they are."""
    texts = (codebook or {}).get("reasons")
    if texts is None:
        return list(values)
    return [None if v is None else texts[int(v)] for v in values]


def readable(run, decisions: Iterable) -> list:
    """`decisions` (stored `Decision` rows of `run`) with their input row as a JSON object and their reason as
    text, as every reader expects them; set as loaded values, so a session never writes them back."""
    decisions = list(decisions)
    codebook = codebook_of(run)
    if codebook is None:
        return decisions
    for decision in decisions:
        if decision.inputs.startswith("["):
            record = input_records(codebook, [decision.inputs])[0]
            set_committed_value(decision, "inputs", json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            set_committed_value(decision, "reasons", reasons_texts(codebook, [decision.reasons])[0])
    return decisions
