"""Loading rule files: every problem is reported with file, rule and position; overrides; rules_version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from povertyrules import load_rules, score
from povertyrules.errors import RuleError, RuleErrors
from povertyrules.lang.rulebook import DEFAULT_RULES

from .conftest import households


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, target)
    return target


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def criterion(data: dict, rule_id: str) -> dict:
    return next(r for r in data["criteria"] if r["id"] == rule_id)


def test_the_shipped_rules_load_with_a_stable_version(book):
    assert len(book.version) == 12
    assert load_rules().version == book.version
    assert {"identification", "exit", "monitoring", "counted"} <= set(book.decisions)


def test_an_unknown_name_is_reported_with_file_rule_position_and_a_suggestion(rules_copy):
    edit(rules_copy / "identification.yaml",
         lambda d: criterion(d, "income_below_line").update(when="per_capita_incom < poverty_line"))
    with pytest.raises(RuleErrors) as caught:
        load_rules(rules_copy)
    error = caught.value.errors[0]
    assert error.file.endswith("identification.yaml") and error.rule == "income_below_line"
    assert error.position == 0 and "did you mean 'per_capita_income'" in error.message


def test_a_forbidden_expression_is_rejected_not_run(rules_copy, tmp_path):
    marker = tmp_path / "ran"
    edit(rules_copy / "identification.yaml", lambda d: criterion(d, "income_below_line").update(
        when=f"__import__('pathlib').Path('{marker}').touch()"))
    with pytest.raises(RuleErrors, match="income_below_line"):
        load_rules(rules_copy)
    assert not marker.exists()


def test_a_type_error_is_reported(rules_copy):
    edit(rules_copy / "identification.yaml",
         lambda d: criterion(d, "income_below_line").update(when="per_capita_income < food_secure"))
    with pytest.raises(RuleErrors, match="needs a number"):
        load_rules(rules_copy)


def test_all_problems_are_reported_in_one_pass(rules_copy):
    def break_two(d):
        criterion(d, "income_below_line").update(when="nope < 1")
        criterion(d, "score_below_threshold").update(when="four_look_total")
    edit(rules_copy / "identification.yaml", break_two)
    with pytest.raises(RuleErrors) as caught:
        load_rules(rules_copy)
    assert {e.rule for e in caught.value.errors} == {"income_below_line", "score_below_threshold"}


def test_an_unexpected_key_names_the_rule(rules_copy):
    edit(rules_copy / "exit.yaml", lambda d: criterion(d, "score_at_least_threshold").update(threshold=60))
    with pytest.raises(RuleError) as caught:
        load_rules(rules_copy)
    assert caught.value.rule == "score_at_least_threshold" and "Extra inputs" in caught.value.message


def test_a_rule_without_a_clause_is_rejected(rules_copy):
    edit(rules_copy / "exit.yaml", lambda d: criterion(d, "score_at_least_threshold").update(clause=[]))
    with pytest.raises(RuleErrors, match="at least one clause"):
        load_rules(rules_copy)


def test_a_circular_definition_is_rejected(rules_copy):
    edit(rules_copy / "identification.yaml",
         lambda d: d["definitions"][0].update(value="per_capita_income + 1"))
    with pytest.raises(RuleErrors, match="depends on itself"):
        load_rules(rules_copy)


def test_an_exception_must_name_an_outcome_rule_of_its_decision(rules_copy):
    edit(rules_copy / "identification.yaml",
         lambda d: d["decision"]["outcomes"][3].update(exception_of="no_such_rule"))
    with pytest.raises(RuleErrors, match="exception_of 'no_such_rule'"):
        load_rules(rules_copy)


def test_a_message_with_a_semicolon_is_rejected(rules_copy):
    edit(rules_copy / "exit.yaml", lambda d: criterion(d, "score_at_least_threshold")["message"].update(en="a; b"))
    with pytest.raises(RuleErrors, match="may not contain ';'"):
        load_rules(rules_copy)


def test_top_level_rules_that_apply_together_are_an_error_row_naming_the_household(rules_copy):
    edit(rules_copy / "identification.yaml",
         lambda d: d["decision"]["outcomes"][0].update(when="income_below_line"))
    book = load_rules(rules_copy)
    frame = pd.concat([households({"net_income": "6000", "four_look_score": "10"}),
                       households({"net_income": "1000", "four_look_score": "80"}).assign(household_id="fine")])
    result = score(frame.reset_index(drop=True), rules=book)
    assert list(result.decisions["household_id"]) == ["fine"]
    (error,) = result.errors.to_dict("records")
    assert error["household_id"] == frame["household_id"].iloc[0] and error["row"] == 2
    assert "apply together" in error["error"] and "id_criteria_not_met" in error["error"]
    assert result.accounting() == {"input_rows": 2, "decided": 1, "error_rows": 1}


def test_an_override_file_changes_a_parameter_and_the_version(tmp_path, book):
    override = tmp_path / "qianxinan.yaml"
    override.write_text("name: 黔西南州\nparameters:\n  poverty_line:\n    2017-01-01:\n      value: 3335\n"
                        "      source: 黔西南州 2017 标准\n", encoding="utf-8")
    county = load_rules(overrides=[override])
    assert county.parameters["poverty_line"].at(2017) == 3335
    assert county.parameters["poverty_line"].at(2016) == 2952  # other years keep the national values
    assert county.version != book.version
    assert load_rules(overrides=[override]).version == county.version


def test_an_override_of_an_unknown_parameter_suggests_the_right_name(tmp_path):
    override = tmp_path / "o.yaml"
    override.write_text("name: x\nparameters:\n  poverty_lines: 5000\n", encoding="utf-8")
    with pytest.raises(RuleError, match="did you mean 'poverty_line'"):
        load_rules(overrides=[override])


def test_a_bare_override_value_applies_to_every_year(book):
    what_if = load_rules(values={"monitoring_multiplier": 2})
    assert what_if.parameters["monitoring_multiplier"].at(2020) == 2
    assert what_if.parameters["monitoring_multiplier"].at(2013) == 2


def test_parameters_carry_unit_source_and_confidence(book):
    line = book.parameters["poverty_line"]
    assert line.unit.startswith("yuan") and "ID-2.2" in line.clause
    entry = line.entry(2013)
    assert entry and entry[1].value == 2736 and entry[1].confidence == "checked" and "2736" in entry[1].source
    assert line.at(2021) is None  # no national line after 2020: counties override


@pytest.mark.parametrize("column", ["members", "net_income", "situation"])
def test_a_parameter_named_like_a_column_is_refused_at_load(rules_copy, column):
    source = rules_copy / "parameters" / "exit" / "exit_margin.yaml"
    (rules_copy / "parameters" / "exit" / f"{column}.yaml").write_text(source.read_text(encoding="utf-8"),
                                                                       encoding="utf-8")
    with pytest.raises(RuleErrors) as caught:
        load_rules(rules_copy)
    assert f"parameter '{column}' has the name of an input column" in str(caught.value)
    assert "与输入列同名" in str(caught.value)


def test_a_rule_named_like_a_column_is_refused_at_load(rules_copy):
    path = rules_copy / "identification.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("id: four_look_total", "id: able_bodied")
                    .replace("{four_look_total}", "{able_bodied}"), encoding="utf-8")
    with pytest.raises(RuleErrors) as caught:
        load_rules(rules_copy)
    assert "definition 'able_bodied' has the name of an input column" in str(caught.value)


def test_every_clause_of_the_policy_texts_is_encoded_or_declared_not_encoded(book):
    from povertyrules.lang.clauses import clauses

    declared = {n.clause for n in book.not_encoded}
    assert set(clauses()) - book.cited_clauses() - declared == set()
    assert {"MON-4.4", "MON-4.5"} <= declared
