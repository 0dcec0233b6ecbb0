"""The identification, exit and monitoring rules written as an OpenFisca tax and benefit system.

One variable per input column, definition, criterion, outcome rule and decision, named as in ``rules/*.yaml``
and labelled from the loaded `RuleBook` (label: the rule's Chinese description; reference: its clause ids), so
a rule the project renames or drops makes `build_system` fail rather than drift. The formulas are the port:
written by hand in OpenFisca's style, vectorised over every household of a simulation. The figures are not:
every parameter comes from the book (``rules/parameters``, with overrides and province files applied) through
OpenFisca's own dated parameter tree, looked up as ``parameters(period).<name>``.

Verdicts are integers in Kleene's order (see `logic`). A decision is two variables: ``<decision>_possible`` (the
bit mask of possible outcomes, bit i for the i-th value of the decision in the rule file) and ``<decision>``
(the index of the outcome decided, ``len(values)`` for review).
"""

from __future__ import annotations

import operator as op
from typing import Any

import numpy as np
from openfisca_core.entities import build_entity
from openfisca_core.errors import ParameterNotFoundError
from openfisca_core.indexed_enums import Enum
from openfisca_core.parameters import ParameterNode
from openfisca_core.periods import YEAR
from openfisca_core.taxbenefitsystems import TaxBenefitSystem
from openfisca_core.variables import Variable

from povertyrules.lang.rulebook import RuleBook

from .logic import (
    F,
    Rule,
    T,
    U,
    and_,
    coalesce,
    compare,
    decided,
    divide,
    is_outcome,
    known,
    not_,
    or_,
    resolve,
    verdict,
)

Household = build_entity(key="household", plural="households", label="户", is_person=True)

DECISIONS = ("identification", "exit", "monitoring")
NUMBER_INPUTS = ("members", "net_income", "net_income_last_year", "rigid_expenditure", "four_look_score",
                 "look_house", "look_grain", "look_labor", "look_study", "compliant_spending")
VERDICT_INPUTS = ("food_secure", "clothing_secure", "education_secured", "medical_secured", "housing_secured",
                  "water_secured", "ex_public_employee", "ex_village_cadre", "ex_urban_property",
                  "ex_urban_property_rebuild", "ex_vehicle", "ex_business", "ex_costly_schooling",
                  "hardship_approved")


class RegisteredStatus(Enum):
    """建档立卡状态, with a member for a blank cell (OpenFisca enums have no missing value)."""

    none = "未建档"
    poor = "贫困户"
    exited = "已脱贫"
    unknown = "未填"


def parameter_tree(book: RuleBook) -> ParameterNode:
    """The book's parameters (after overrides) as OpenFisca's dated parameter tree; a null ends a value."""
    return ParameterNode("", data={
        name: {"description": p.description.zh, "metadata": {"unit": p.unit, "reference": ", ".join(p.clause)},
               "values": {d.isoformat(): {"value": v.value} for d, v in p.values.items()}}
        for name, p in book.parameters.items()})


def value(parameters, period, name: str) -> float:
    """A parameter's value in force for the period, NaN where none is (unknown, as a blank cell)."""
    try:
        found = getattr(parameters(period), name)
    except ParameterNotFoundError:
        return np.nan
    return np.nan if found is None else float(found)


def flag(parameters, period, name: str) -> np.int32:
    """A yes/no parameter as a verdict (unknown where no value is in force)."""
    v = value(parameters, period, name)
    return U if np.isnan(v) else (T if v else F)


def _variables(book: RuleBook) -> list[type[Variable]]:
    bits = {d: {v: 1 << i for i, v in enumerate(book.decisions[d].values)} for d in DECISIONS}
    counts = {d: len(book.decisions[d].values) for d in DECISIONS}

    def status_is(h, period, *wanted: str) -> np.ndarray:
        status = h("registered_status", period)
        hit = np.zeros(len(status), dtype=bool)
        for w in wanted:
            hit |= status == RegisteredStatus[w]
        return verdict(hit, status != RegisteredStatus.unknown)

    formulas: dict[str, tuple[dict[str, Any], Any]] = {}

    def declare(kind: dict[str, Any]):
        def register(formula):
            formulas[formula.__name__] = (kind, formula)
            return formula
        return register

    number = declare({"value_type": float, "default_value": np.nan})
    tri = declare({"value_type": int, "default_value": int(U)})
    integer = declare({"value_type": int})

    # -- identification (ID-1…ID-3) and the six exclusions (ID-2.3) --------------------------------------
    @number
    def per_capita_income(h, period, parameters):
        return divide(h("net_income", period), h("members", period))

    @number
    def per_capita_income_last_year(h, period, parameters):
        return divide(h("net_income_last_year", period), h("members", period))

    @number
    def four_look_total(h, period, parameters):
        looks = [np.minimum(h(f"look_{look}", period), value(parameters, period, f"look_{look}_max"))
                 for look in ("house", "grain", "labor", "study")]
        return coalesce(h("four_look_score", period), looks[0] + looks[1] + looks[2] + looks[3])

    @tri
    def income_below_line(h, period, parameters):
        return compare(op.le, h("per_capita_income", period), value(parameters, period, "poverty_line"))

    @tri
    def score_below_threshold(h, period, parameters):
        return compare(op.lt, h("four_look_total", period), value(parameters, period, "four_look_threshold"))

    @tri
    def two_no_worries_three_guarantees(h, period, parameters):
        return and_(*(h(c, period) for c in ("food_secure", "clothing_secure", "education_secured",
                                              "medical_secured", "housing_secured")))

    @tri
    def ex_2_3_1_public_employee(h, period, parameters):
        return h("ex_public_employee", period)

    @tri
    def ex_2_3_2_village_cadre(h, period, parameters):
        return h("ex_village_cadre", period)

    @tri
    def ex_2_3_4_vehicle(h, period, parameters):
        return h("ex_vehicle", period)

    @tri
    def ex_2_3_5_business(h, period, parameters):
        return h("ex_business", period)

    @tri
    def ex_2_3_6_costly_schooling(h, period, parameters):
        return h("ex_costly_schooling", period)

    @tri
    def ex_2_3_3_urban_property(h, period, parameters):
        return and_(h("ex_urban_property", period), not_(h("ex_urban_property_rebuild", period)))

    @tri
    def any_exclusion(h, period, parameters):
        return or_(*(h(c, period) for c in (
            "ex_2_3_1_public_employee", "ex_2_3_2_village_cadre", "ex_2_3_3_urban_property",
            "ex_2_3_4_vehicle", "ex_2_3_5_business", "ex_2_3_6_costly_schooling")))

    @tri
    def id_criteria_met(h, period, parameters):
        return and_(h("income_below_line", period), h("score_below_threshold", period))

    @tri
    def id_criteria_not_met(h, period, parameters):
        return not_(h("id_criteria_met", period))

    @tri
    def id_six_exclusions(h, period, parameters):
        return h("any_exclusion", period)

    @tri
    def id_hardship_route(h, period, parameters):
        return h("hardship_approved", period)

    @integer
    def identification_possible(h, period, parameters):
        b = bits["identification"]
        return resolve([
            Rule(h("id_criteria_not_met", period), b["not_poor"]),
            Rule(h("id_criteria_met", period), b["poor"], [
                Rule(h("id_six_exclusions", period), b["excluded"], [
                    Rule(h("id_hardship_route", period), b["poor"])])])])

    # -- exit (EX-1) --------------------------------------------------------------------------------------
    @tri
    def income_stably_above_line(h, period, parameters):
        margin = value(parameters, period, "exit_margin")
        this_year = compare(op.gt, h("per_capita_income", period),
                            value(parameters, period, "poverty_line") + margin)
        last_year = compare(op.gt, h("per_capita_income_last_year", period),
                            value(parameters, period.last_year, "poverty_line") + margin)
        return and_(this_year, or_(not_(flag(parameters, period, "exit_check_last_year")), last_year))

    @tri
    def score_at_least_threshold(h, period, parameters):
        return compare(op.ge, h("four_look_total", period), value(parameters, period, "four_look_threshold"))

    @tri
    def exit_not_registered_poor(h, period, parameters):
        return not_(status_is(h, period, "poor"))

    @tri
    def exit_registered_poor(h, period, parameters):
        return status_is(h, period, "poor")

    @tri
    def exit_criteria_met(h, period, parameters):
        return and_(h("income_stably_above_line", period), h("two_no_worries_three_guarantees", period),
                    h("score_at_least_threshold", period))

    @integer
    def exit_possible(h, period, parameters):
        b = bits["exit"]
        return resolve([
            Rule(h("exit_not_registered_poor", period), b[""]),
            Rule(h("exit_registered_poor", period), b["not_eligible"], [
                Rule(h("exit_criteria_met", period), b["eligible"])])])

    # -- monitoring: 2020 (MON-1, MON-2) and from 2021 (M21-1…M21-4) --------------------------------------
    @number
    def monitoring_line(h, period, parameters):
        national = value(parameters, period, "monitoring_multiplier") * value(parameters, period, "poverty_line")
        return np.full(h.count, coalesce(value(parameters, period, "province_monitoring_line"), national))

    @number
    def per_capita_income_after_spending(h, period, parameters):
        return divide(h("net_income", period) - h("compliant_spending", period), h("members", period))

    @tri
    def m21_in_force(h, period, parameters):
        return np.full(h.count, flag(parameters, period, "regime_2021"), dtype=np.int32)

    @tri
    def monitoring_in_force(h, period, parameters):
        multiplier = known(np.full(h.count, value(parameters, period, "monitoring_multiplier")))
        return and_(multiplier, not_(h("m21_in_force", period)))

    @tri
    def low_income(h, period, parameters):
        return compare(op.lt, h("per_capita_income", period), h("monitoring_line", period))

    @tri
    def rigid_expenditure_high(h, period, parameters):
        return compare(op.gt, h("rigid_expenditure", period),
                       value(parameters, period, "rigid_expenditure_ratio") * h("net_income_last_year", period))

    @tri
    def income_dropped(h, period, parameters):
        last = h("net_income_last_year", period)
        share = value(parameters, period, "income_drop_share")
        return and_(compare(op.gt, last, 0.0), compare(op.le, h("net_income", period), (1 - share) * last))

    @tri
    def any_risk(h, period, parameters):
        return or_(h("low_income", period), h("rigid_expenditure_high", period), h("income_dropped", period))

    @tri
    def three_guarantees_and_water(h, period, parameters):
        return and_(*(h(c, period) for c in ("education_secured", "medical_secured", "housing_secured",
                                              "water_secured")))

    @tri
    def m21_outstanding_problem(h, period, parameters):
        return not_(h("three_guarantees_and_water", period))

    @tri
    def m21_any_risk(h, period, parameters):
        return or_(h("rigid_expenditure_high", period), h("income_dropped", period),
                   h("m21_outstanding_problem", period))

    @tri
    def m21_in_scope(h, period, parameters):
        return and_(h("low_income", period), h("m21_any_risk", period))

    @tri
    def m21_severe_hardship(h, period, parameters):
        after = compare(op.lt, h("per_capita_income_after_spending", period), h("monitoring_line", period))
        return and_(or_(h("rigid_expenditure_high", period), h("income_dropped", period)), after)

    def identified(h, period) -> tuple[np.ndarray, np.ndarray]:
        """(identified as poor, not identified as poor) as verdicts, from the identification's possible set."""
        poor = bits["identification"]["poor"]
        possible = h("identification_possible", period)
        return is_outcome(possible, poor), is_outcome(possible, ~poor & ((1 << counts["identification"]) - 1))

    def in_force_with_risk(h, period) -> np.ndarray:
        return and_(h("monitoring_in_force", period), h("any_risk", period))

    @tri
    def mon_not_in_force(h, period, parameters):
        return not_(h("monitoring_in_force", period))

    @tri
    def mon_no_risk(h, period, parameters):
        return and_(h("monitoring_in_force", period), not_(or_(
            h("low_income", period), h("rigid_expenditure_high", period), h("income_dropped", period))))

    @tri
    def mon_unstable_exited(h, period, parameters):
        return and_(in_force_with_risk(h, period), status_is(h, period, "exited"), identified(h, period)[1])

    @tri
    def mon_returned(h, period, parameters):
        return and_(in_force_with_risk(h, period), status_is(h, period, "exited"), identified(h, period)[0])

    @tri
    def mon_edge(h, period, parameters):
        return and_(in_force_with_risk(h, period), status_is(h, period, "none"), identified(h, period)[1])

    @tri
    def mon_newly_identified(h, period, parameters):
        return and_(in_force_with_risk(h, period), status_is(h, period, "none"), identified(h, period)[0])

    @tri
    def mon_registered_poor(h, period, parameters):
        return and_(in_force_with_risk(h, period), status_is(h, period, "poor"))

    @tri
    def mon21_unstable_exited(h, period, parameters):
        return and_(h("m21_in_force", period), h("m21_in_scope", period), status_is(h, period, "exited"))

    @tri
    def mon21_edge(h, period, parameters):
        return and_(h("m21_in_force", period), h("m21_in_scope", period), status_is(h, period, "none"))

    @tri
    def mon21_sudden_hardship(h, period, parameters):
        in_scope = and_(h("m21_in_scope", period), status_is(h, period, "exited", "none"))
        return and_(h("m21_in_force", period), h("m21_severe_hardship", period), not_(in_scope))

    @integer
    def monitoring_possible(h, period, parameters):
        b = bits["monitoring"]
        return resolve([
            Rule(h("mon_not_in_force", period), b["none"], [
                Rule(h("mon21_unstable_exited", period), b["unstable_exited"]),
                Rule(h("mon21_edge", period), b["edge"]),
                Rule(h("mon21_sudden_hardship", period), b["sudden_hardship"])]),
            Rule(h("mon_no_risk", period), b["none"]),
            Rule(h("mon_unstable_exited", period), b["unstable_exited"]),
            Rule(h("mon_returned", period), b["returned"]),
            Rule(h("mon_edge", period), b["edge"]),
            Rule(h("mon_newly_identified", period), b["none"]),
            Rule(h("mon_registered_poor", period), b["none"])])

    def decision(name: str):
        def formula(h, period, parameters):
            return decided(h(f"{name}_possible", period), counts[name])
        return formula

    for name in DECISIONS:
        formulas[name] = ({"value_type": int}, decision(name))

    common = {"entity": Household, "definition_period": YEAR}
    out: list[type[Variable]] = [type(n, (Variable,), {**common, "value_type": float, "default_value": np.nan,
                                                        "label": n}) for n in NUMBER_INPUTS]
    out += [type(n, (Variable,), {**common, "value_type": int, "default_value": int(U), "label": n})
            for n in VERDICT_INPUTS]
    out.append(type("registered_status", (Variable,), {
        **common, "value_type": Enum, "possible_values": RegisteredStatus,
        "default_value": RegisteredStatus.unknown, "label": "registered_status"}))
    for name, (kind, formula) in formulas.items():
        rule = book.rules.get(name)
        if rule is None and not (name in DECISIONS or name.removesuffix("_possible") in DECISIONS):
            raise ValueError(f"the OpenFisca port computes '{name}', which the rule set no longer defines")
        described = {"label": rule.description.zh, "reference": list(rule.clauses)} if rule else {"label": name}
        out.append(type(name, (Variable,), {**common, **kind, **described, "formula": formula}))
    return out


def ported_rules(book: RuleBook) -> list[str]:
    """The rules the port computes: the criteria, definitions and outcome rules of its three decisions."""
    return [v.__name__ for v in _variables(book) if v.__name__ in book.rules]


class PovertySystem(TaxBenefitSystem):
    """A tax and benefit system of the port for one loaded rule set."""

    def __init__(self, book: RuleBook):
        super().__init__([Household])
        self.parameters = parameter_tree(book)
        self.book = book
        for variable in _variables(book):
            self.add_variable(variable)
        missing = [r for d in DECISIONS for r in book.decisions[d].outcomes if r not in self.variables]
        if missing:
            raise ValueError(f"the OpenFisca port has no variable for the outcome rules {missing}")


def build_system(book: RuleBook) -> PovertySystem:
    return PovertySystem(book)
