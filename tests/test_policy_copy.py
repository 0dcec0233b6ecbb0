"""The policy texts shipped in the package are word for word those in shared/policy."""

from __future__ import annotations

from importlib import resources

import pytest

from povertyrules.lang.clauses import POLICY_FILES, clauses

from .conftest import SHARED


@pytest.mark.parametrize("name", POLICY_FILES)
def test_shipped_policy_text_matches_shared_word_for_word(name):
    source = SHARED / "policy" / name
    if not source.exists():
        pytest.skip("shared/policy is not beside this checkout")
    shipped = resources.files("povertyrules.policy").joinpath(name).read_text(encoding="utf-8")
    assert shipped == source.read_text(encoding="utf-8")


def test_clause_texts_are_read_with_their_ids():
    found = clauses()
    assert found["ID-2.3.4"] == "家庭成员中拥有小轿车（含面包车）、工程机械、大型农机具的；"
    assert found["MON-2"].startswith("(二) 监测范围。人均可支配收入低于国家扶贫标准 1.5 倍左右的家庭")
    assert {"ID-1", "ID-3", "EX-1", "EX-2", "MON-P2", "MON-4.3", "MON-5.1"} <= set(found)


def test_every_clause_a_rule_cites_is_in_the_policy_text(book):
    assert book.cited_clauses() <= set(clauses())
