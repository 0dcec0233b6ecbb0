"""Fast reading and writing give exactly what the plain per-cell code gives: the bulk (Arrow) pre-filter of
masking, and the typed parsing of contract columns."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from povertyrules.privacy import _candidates, mask_frame, mask_text, pseudonym_text

#: characters that make and break identity and phone numbers: ASCII and full-width digits, X, separators,
#: a prefix's +, letters (the look-around of the patterns), Chinese text and line breaks
NUMBERISH = st.text(alphabet="0123456789０１２３９Xx +-ab中\n\u0663", max_size=40)
DIGIT_RUNS = st.builds(lambda a, d, b: a + d + b, NUMBERISH, st.text(alphabet="0123456789", min_size=10, max_size=19),
                       NUMBERISH)
CELLS = st.one_of(NUMBERISH, DIGIT_RUNS, st.just("13812345678"), st.just("11010519491231002X"))


@settings(max_examples=400, deadline=None)
@given(st.lists(CELLS, min_size=1, max_size=30))
def test_a_cell_left_out_by_the_bulk_filter_is_one_masking_would_not_change(cells):
    found = _candidates(pa.array(cells, pa.string()))
    for cell, candidate in zip(cells, found, strict=True):
        if not candidate:
            assert mask_text(cell) == cell, cell
            assert pseudonym_text(cell, b"k") == cell, cell


def _mask_every_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Masking as it was before the bulk filter: every text cell through `mask_text`."""
    text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    return frame.assign(**{c: frame[c].map(lambda v: mask_text(v) if isinstance(v, str) else v) for c in text})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), CELLS), st.one_of(st.none(), CELLS), st.integers(0, 9)),
                min_size=1, max_size=20),
       st.sampled_from(["object", "string", "arrow"]))
def test_a_masked_frame_holds_what_masking_every_cell_gives(rows, kind):
    dtype = {"object": object, "string": "string", "arrow": pd.ArrowDtype(pa.string())}[kind]
    frame = pd.DataFrame({"a": pd.Series([r[0] for r in rows], dtype=dtype),
                          "b": pd.Series([r[1] for r in rows], dtype=object), "n": [r[2] for r in rows]})
    fast, plain = mask_frame(frame), _mask_every_cell(frame)
    for column in frame.columns:
        shown = [None if pd.isna(v) else v for v in fast[column].astype(object)]
        expected = [None if pd.isna(v) else v for v in plain[column].astype(object)]
        assert shown == expected, column
