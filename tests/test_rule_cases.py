"""The rule test cases in rules/tests/*.yaml, and clause coverage of rules and cases."""

from __future__ import annotations

import pytest

from povertyrules.lang.cases import load_cases, run_case
from povertyrules.lang.rulebook import DEFAULT_RULES

CASES = load_cases(DEFAULT_RULES / "tests")
MUST_BE_COVERED = ["ID-1", "ID-2.1", "ID-2.2", "ID-2.3", "ID-2.3.1", "ID-2.3.2", "ID-2.3.3", "ID-2.3.4",
                   "ID-2.3.5", "ID-2.3.6", "ID-2.4", "ID-3", "EX-1", "MON-1", "MON-2"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule_case(book, case):
    assert run_case(book, case) == []


def test_there_are_cases_for_every_decision():
    assert len(CASES) >= 50
    outputs = {key for c in CASES for key in c.output}
    assert {"identification", "exit", "monitoring", "monitoring_triggers", "error_column"} <= outputs


@pytest.mark.parametrize("clause", MUST_BE_COVERED)
def test_every_core_clause_is_cited_by_a_rule_and_exercised_by_a_case(book, clause):
    assert any(clause in r.clauses for r in book.rules.values()), f"no rule cites {clause}"
    assert any(clause in c.clauses for c in CASES), f"no test case exercises {clause}"


def test_a_case_that_expects_the_wrong_outcome_fails(book):
    wrong = CASES[0].__class__(**{**CASES[0].__dict__, "output": {"identification": "poor"}})
    assert run_case(book, wrong) != []
