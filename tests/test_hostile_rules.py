"""Hostile or clumsy rule and parameter input is refused with a clean message, never a traceback or a hang."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.errors import ExpressionError, RuleError, RuleErrors
from povertyrules.lang import expr as ex
from povertyrules.lang import safeyaml
from povertyrules.lang.rulebook import DEFAULT_RULES, load_rulebook
from povertyrules.scoring import score

from .conftest import households

runner = CliRunner()

BILLION_LAUGHS = "\n".join([
    "name: laughs", "parameters:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"  {c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]" for p, c in zip("abcdefgh", "bcdefghi",
                                                                                      strict=True)),
])


def run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def clean_failure(result) -> str:
    """The command failed with a message, not a traceback; returns its output."""
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.output.replace("\n", "")  # rich wraps long lines


@pytest.fixture
def rules(tmp_path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_billion_laughs_override_is_refused_at_the_first_alias(tmp_path):
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text(BILLION_LAUGHS, encoding="utf-8")
    assert len(BILLION_LAUGHS) < 800
    output = clean_failure(run("rules", "check", "--override", bomb))
    assert "anchors" in output and "laughs.yaml" in output
    with pytest.raises(RuleError, match="line 3"):
        safeyaml.load(bomb)


@pytest.mark.parametrize("where", ["procedures/steps.yaml", "identification.yaml",
                                   "parameters/poverty/poverty_line.yaml", "tests/identification.yaml"])
def test_python_tags_are_refused_in_every_yaml_the_project_reads(rules, where):
    path = rules / where
    path.write_text("evil: !!python/object/apply:os.system ['echo pwned']\n" + path.read_text(encoding="utf-8"),
                    encoding="utf-8")
    command = "test" if where.startswith("tests/") else "check"
    output = clean_failure(run("rules", command, "--rules", rules))
    assert "tags" in output and "python/object" in output


def test_aliases_and_custom_tags_are_refused_in_text_too():
    for text in ("a: &x 1\nb: *x\n", "a: !custom 1\n", "a: !!binary aGVsbG8=\n"):
        with pytest.raises(RuleError):
            safeyaml.loads(text)
    assert safeyaml.loads("a: [1, {b: '2017-01-01'}]\nc: 2017-01-01\n")["a"] == [1, {"b": "2017-01-01"}]


@pytest.mark.parametrize("expression,message", [
    ("x < " + "9" * 400, "digits"),
    ("net_income < 1e400", "out of range"),
    ("not " * 10_000 + "ex_vehicle", "longer than"),
    (" + ".join(["net_income"] * 100_000) + " > 0", "longer than"),
    ("not " * 300 + "ex_vehicle", "nested deeper"),
    ("-" * 1_500 + "net_income > 0", "nested deeper"),
    ("(" * 150 + "net_income" + ")" * 150 + " > 0", "nested deeper"),
    ("x" + "+x" * 300 + " > 0", "nested deeper"),
    ("x in [" + "1," * 600 + "]", "more than"),
])
def test_expression_size_depth_and_literals_are_limited(expression, message):
    with pytest.raises(ExpressionError, match=message):
        ex.parse(expression)


def test_a_huge_expression_in_a_rule_file_is_a_clean_error(rules):
    edit(rules / "identification.yaml", "when: ", "when: " + "not " * 10_000)
    output = clean_failure(run("rules", "check", "--rules", rules))
    assert "longer than" in output and "identification.yaml" in output


def test_an_unbalanced_brace_in_a_message_is_a_clean_error(rules):
    edit(rules / "identification.yaml", 'zh: "人均纯收入 {per_capita_income}', 'zh: "人均纯收入 {per_capita_income')
    output = clean_failure(run("rules", "check", "--rules", rules))
    assert "bad message template" in output


def test_bad_date_keys_are_refused(rules, tmp_path):
    override = tmp_path / "bad-date.yaml"
    override.write_text("name: x\nparameters:\n  poverty_line:\n    2017-13-45: 3000\n", encoding="utf-8")
    assert "not a valid date" in clean_failure(run("rules", "check", "--override", override))
    override.write_text("name: x\nparameters:\n  poverty_line:\n    someday: 3000\n", encoding="utf-8")
    assert "poverty_line" in clean_failure(run("rules", "check", "--override", override))
    edit(rules / "parameters/poverty/poverty_line.yaml", "2015-01-01:", "2015-02-30:")
    assert "not a valid date" in clean_failure(run("rules", "check", "--rules", rules))


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400", "1e300"])
def test_nan_and_infinite_parameter_values_are_refused(rules, tmp_path, value):
    override = tmp_path / "nan.yaml"
    override.write_text(f"name: x\nparameters:\n  poverty_line: {value}\n", encoding="utf-8")
    clean_failure(run("rules", "check", "--override", override))
    edit(rules / "parameters/poverty/poverty_line.yaml", "value: 2300", f"value: {value}")
    with pytest.raises((RuleError, RuleErrors)):
        load_rulebook(rules)


def test_set_nan_cannot_turn_a_poor_household_not_poor(tmp_path):
    data = tmp_path / "h.csv"
    households({"net_income": "3000", "members": "2", "four_look_score": "40"}).to_csv(data, index=False)
    ok = run("score", data, "-o", tmp_path / "d.csv", "--lang", "en")
    assert ok.exit_code == 0, ok.output
    assert pd.read_csv(tmp_path / "d.csv")["identification"].tolist() == ["poor"]
    for bad in ("poverty_line=.nan", "poverty_line=.inf", "poverty_line=[unclosed", "poverty_line={a: b}",
                "=3", "poverty_line", "poverty_line=&a 1"):
        output = clean_failure(run("score", data, "-o", tmp_path / "what-if.csv", "--set", bad))
        assert "--set" in output or "PARAMETER=VALUE" in output or "poverty_line" in output, (bad, output)
    assert not (tmp_path / "what-if.csv").exists()


@pytest.mark.parametrize("cell", ["1e400", "inf", "-Infinity", "nan", "1e300", "9" * 400])
def test_huge_or_infinite_numbers_in_data_are_an_error_on_their_row(cell):
    result = score(households({"net_income": cell}, {}))
    assert result.decisions["household_id"].tolist() == ["h2"]
    error = result.errors[result.errors["column"] == "net_income"]
    assert error["row"].tolist() == [2] and error["value"].tolist() == [cell]


@pytest.mark.parametrize(("folder", "load", "kind"), [("layouts", "povertyrules.layouts.spec:load_layouts", "layout"),
                                                       ("registers", "povertyrules.registers.spec:load_registers",
                                                        "register")])
def test_a_layout_or_register_declared_twice_is_refused_naming_the_second_file(tmp_path, folder, load, kind):
    import importlib

    module, name = load.split(":")
    shipped = sorted((DEFAULT_RULES / folder).glob("*.yaml"))[0]
    shutil.copy(shipped, tmp_path / "a.yaml")
    shutil.copy(shipped, tmp_path / "b.yaml")
    with pytest.raises(RuleError) as error:
        getattr(importlib.import_module(module), name)(tmp_path)
    assert "defined twice" in str(error.value) and kind in str(error.value) and "b.yaml" in str(error.value)
