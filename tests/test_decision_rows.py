"""Decision rows rendered once per combination present (`decisions/reasons.py`) hold exactly what rendering
every row gives: the main reason and clause ids, the missing columns and the monitoring triggers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from povertyrules.datasets.synth import synth
from povertyrules.decisions.reasons import (
    _distinct,
    _joined_flags,
    _main_reasons,
    _missing_leaves,
    decision_order,
    join_present,
)
from povertyrules.decisions.trace import main_reasons
from povertyrules.engines.vectorized import evaluate
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records


@pytest.fixture(scope="module")
def evaluation(book):
    county = synth(3000, seed=13, members=False, blank_rate=0.2, book=book)  # many blanks: many combinations
    valid = parse_records(county.households.astype("string"), HOUSEHOLD_COLUMNS, "t", unique="household_id").valid
    return evaluate(book, valid)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_main_reason_per_combination_is_the_main_reason_of_every_row(evaluation, lang):
    lines, clauses = _main_reasons(evaluation, lang)
    every_lines, every_clauses = main_reasons(evaluation, decision_order(evaluation.book), lang)
    assert len(lines.dictionary) < evaluation.n / 10  # few combinations, so rendering them once is the point
    assert lines.cast(pa.string()).equals(every_lines)
    assert clauses.cast(pa.string()).equals(every_clauses)


def test_missing_columns_per_combination_are_those_of_every_row(evaluation):
    leaves = _missing_leaves(evaluation)
    assert len(leaves) > 1
    every = join_present([pa.array(np.where(mask, leaf, None), type=pa.string()) for leaf, mask in leaves.items()],
                         ";", evaluation.n)
    assert _joined_flags(leaves, evaluation.n).cast(pa.string()).equals(every)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.one_of(st.lists(st.booleans(), min_size=n, max_size=n),
                                   st.lists(st.integers(0, 3 ** 9), min_size=n, max_size=n),
                                   st.lists(st.integers(-5, 2 ** 40), min_size=n, max_size=n)),
                         min_size=1, max_size=8))))
def test_rows_with_the_same_codes_share_a_number_and_the_first_row_of_each_is_found(case):
    n, parts = case
    arrays = [np.array(p, dtype=bool if p and isinstance(p[0], bool) else np.int64) for p in parts]
    first, number = _distinct(arrays, n)
    rows = [tuple(int(a[i]) for a in arrays) for i in range(n)]
    assert len(number) == n and len(first) == len(set(rows))
    for i in range(n):
        for j in range(n):
            assert (number[i] == number[j]) == (rows[i] == rows[j])
    for k, row in enumerate(first):
        assert number[row] == k and rows.index(rows[row]) == row


def test_an_outcome_no_rule_is_known_to_decide_but_every_possible_rule_agrees_on_cites_those_rules():
    from povertyrules import score
    from povertyrules.lang.rulebook import load_rulebook

    from .conftest import households

    book = load_rulebook()
    frame = households({"registered_status": "poor", "rigid_expenditure": None},  # spending unknown
                       {"registered_status": "poor"})  # everything known: no risk
    for lang in ("zh", "en"):
        decisions = score(frame, rules=book, lang=lang).decisions.set_index("household_id")
        assert decisions["monitoring"].tolist() == ["none", "none"]
        unknown, known = (line.split(";")[2] for line in decisions["reasons"])
        rules = [book.rules[r] for r in ("mon_no_risk", "mon_registered_poor")]
        shown = [r.description.zh for r in rules] if lang == "zh" else [r.id for r in rules]
        assert unknown.startswith("MON-2,MON-1 ") and all(text in unknown for text in shown), unknown
        assert known.startswith("MON-2 ") and shown[1] not in known, known  # one rule known to decide
