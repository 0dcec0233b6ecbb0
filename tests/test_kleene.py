"""The batch engine's verdicts in Kleene's order, the decision plan looked up from them, and the packed trace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from povertyrules import load_rules
from povertyrules.datasets.synth import synth
from povertyrules.decisions.trace import codes, decode, pack, table_codes, trace_rules
from povertyrules.engines.outcomes import FALSE, TRUE, UNKNOWN, outcome_table
from povertyrules.engines.vectorized import Vec, evaluate, evaluate_columns, evaluate_expression, kleene_state
from povertyrules.lang import expr as ex
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records

three_valued = st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=30)


def _vec(xs: list[bool | None]) -> Vec:
    return Vec(np.asarray([bool(x) for x in xs]), np.asarray([x is not None for x in xs]))


def _as_python(v: Vec, n: int) -> list[bool | None]:
    v = v.full(n)
    return [bool(x) if k else None for x, k in zip(v.values, v.known, strict=True)]


def _kleene_and(a, b):
    return False if False in (a, b) else (None if None in (a, b) else True)


def _kleene_or(a, b):
    return True if True in (a, b) else (None if None in (a, b) else False)


@settings(deadline=None, max_examples=60)
@given(three_valued, st.data())
def test_verdicts_follow_kleenes_tables(xs, data):
    """Through a rule expression (`a and b`, `a or b`, `not a`) on columns given as values and known masks: the
    verdicts, read back as values and known masks, are Kleene's tables row by row."""
    ys = data.draw(st.lists(st.sampled_from([True, False, None]), min_size=len(xs), max_size=len(xs)))
    book = load_rules()
    result = evaluate_columns(book, {"food_secure": _vec(xs), "clothing_secure": _vec(ys)}, len(xs),
                              years=np.full(len(xs), 2020))
    for text, expected in (("food_secure and clothing_secure", list(map(_kleene_and, xs, ys))),
                           ("food_secure or clothing_secure", list(map(_kleene_or, xs, ys))),
                           ("not food_secure", [None if x is None else not x for x in xs])):
        assert _as_python(evaluate_expression(result, ex.parse(text)), len(xs)) == expected, text


@settings(deadline=None)
@given(three_valued)
def test_both_forms_of_a_condition_say_the_same(xs):
    v = _vec(xs)
    kleene = np.asarray(v.kleene)
    assert kleene.dtype == np.int8
    assert list(kleene) == [{False: 0, None: 1, True: 2}[x] for x in xs]
    back = Vec.of_verdicts(kleene)
    assert _as_python(back, len(xs)) == xs
    assert list(back.true()) == [x is True for x in xs] and list(back.false()) == [x is False for x in xs]
    assert list(back.unknown()) == [x is None for x in xs]
    states = {False: FALSE, True: TRUE, None: UNKNOWN}
    assert list(kleene_state(kleene)) == [states[x] for x in xs]


@pytest.fixture(scope="module")
def county():
    """Synthetic households of the 2020 and 2023 regimes with a fifth of the cells blanked."""
    book = load_rules(province="云南省")
    frames = []
    for year in (2020, 2023):
        households = synth(3000, seed=year, year=year, members=False, book=book).households
        rng = np.random.default_rng(year)
        for column in households.columns.drop(["household_id", "year", "members", "net_income"]):
            households.loc[rng.random(len(households)) < 0.2, column] = None
        frames.append(households)
    frame = pd.concat(frames, ignore_index=True)
    frame["household_id"] = [f"h{i}" for i in range(len(frame))]
    typed = parse_records(frame, HOUSEHOLD_COLUMNS, "<t>", unique="household_id").valid
    return book, evaluate(book, typed)


def test_the_packed_trace_is_the_format_of_earlier_runs(county):
    """Each row two bits a rule (0 false, 1 true, 2 unknown), two rules a hexadecimal digit, the first rule in
    the low bits: written here row by row from the verdicts, as runs stored before the verdicts were int8."""
    book, result = county
    rules = trace_rules(book)
    matrix = codes(result, rules)
    expected = ["".join("0123456789abcdef"[row[j] + 4 * (row[j + 1] if j + 1 < len(row) else 0)]
                        for j in range(0, len(row), 2)) for row in matrix.tolist()]
    packed = pack(result, rules)
    assert packed.to_pylist() == expected
    assert (decode(packed, len(rules)) == matrix).all()
    assert (decode(expected, len(rules)) == matrix).all()
    assert (decode(packed.slice(7, 50), len(rules)) == matrix[7:57]).all()
    assert {int(x) for x in np.unique(matrix)} == {FALSE, TRUE, UNKNOWN}  # every verdict occurs


def test_what_a_row_cites_and_decides_is_its_combinations_resolution(county):
    """Outcomes, cited masks and possible outcomes looked up from each row's combination are the outcome table's
    resolution of that row's verdicts, worked out row by row."""
    book, result = county
    for name in book.decisions:
        if book.decisions[name].entity != "household":
            continue
        table = outcome_table(book, name)
        verdicts = np.stack([result.verdict(r.id) for r in table.rules], axis=1)
        codes_ = table_codes(result, name)
        outcome = result.outcome(name)
        for i in range(0, result.n, 7):
            code = table.code([int(s) for s in verdicts[i]])
            assert codes_[i] == code
            res = table.resolve(code)
            assert outcome[i] == (res.decided if res.decided is not None else "review")
            assert {r.id for r in table.rules if result.cited[r.id][i]} == set(res.cited)
            values = list(book.decisions[name].values)
            assert {v for j, v in enumerate(values) if result.possible[name][i] >> j & 1} == set(res.possible)
    assert not result.failed().any()


def test_one_row_of_an_evaluation_is_that_row(county):
    book, result = county
    i = 123
    one = result.row(i)
    for name in [*trace_rules(book), "per_capita_income"]:
        v, w = result.value(name), one.value(name)
        assert bool(w.known[0]) == bool(v.known[i])
        if v.known[i]:
            assert w.values[0] == v.values[i]
    for name in book.decisions:
        if book.decisions[name].entity == "household":
            assert one.outcome(name)[0] == result.outcome(name)[i]
            assert all(one.cited[r][0] == result.cited[r][i] for r in book.decisions[name].outcomes)
