"""Processing events one at a time: each updates a household's snapshot for the year, and the monitoring
criteria, compiled to a durable_rules ruleset from the same rule files, say which triggers now hold. A trigger
that newly holds raises an alert (MON-2, MON-5.1) proposed for county confirmation (MON-3)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from povertyrules.engines.durable import DurableTriggers, household_fact
from povertyrules.errors import MissingParameters
from povertyrules.lang import expr as ex
from povertyrules.lang.check import require_parameters
from povertyrules.lang.rulebook import RuleBook
from povertyrules.monitor.events import RIGID, Event

#: the extra condition the events rules add (rules/monitoring_events.yaml)
NO_LABOUR = "no_labour_capacity_left"


class EventNotApplied(Exception):
    """An event the rules could not be evaluated on; the household's state is unchanged."""


@dataclass
class Year:
    """What the events of one calendar year have changed for one household."""

    rigid: float = 0.0
    cause: str | None = None
    income: float | None = None
    job_loss: float = 0.0
    disabled: int = 0
    raised: set[str] = field(default_factory=set)


@dataclass
class Proposal:
    """An alert to store: the household, the event that raised it, the trigger and the evidence."""

    household_id: str
    event: Event
    trigger: str
    clauses: list[str]
    observed: dict[str, Any]
    message: str


class Monitor:
    """Household snapshots from a scored year, updated by events, checked by the durable_rules triggers."""

    def __init__(self, book: RuleBook, households: dict[str, dict[str, Any]]):
        self.book, self.households = book, households
        self.criteria = [r.id for r in book.triggers().values()]
        if NO_LABOUR in book.rules:
            self.criteria.append(NO_LABOUR)
        self.rules = DurableTriggers(book, self.criteria)
        self.years: dict[tuple[str, int], Year] = {}
        self._years_checked: set[int] = set()

    def snapshot(self, household_id: str, year: int) -> dict[str, Any]:
        """The household as the events of `year` leave it, as a typed row for the rules."""
        base, state = self.households[household_id], self.years[household_id, year]
        row = dict(base)
        scored = int(base["year"])
        if year > scored:  # a later year: the scored year's income is last year's
            row["net_income_last_year"] = base.get("net_income")
            row["rigid_expenditure"] = state.rigid
            row["expenditure_cause"] = state.cause
        else:
            row["rigid_expenditure"] = (base.get("rigid_expenditure") or 0.0) + state.rigid
            row["expenditure_cause"] = state.cause or base.get("expenditure_cause")
        income = state.income if state.income is not None else base.get("net_income")
        row["net_income"] = None if income is None else income - state.job_loss
        if base.get("able_bodied") is not None:
            row["able_bodied"] = max(0.0, float(base["able_bodied"]) - state.disabled)
        row["year"] = year
        return row

    def process(self, event: Event) -> list[Proposal]:
        """Apply one event; return the alerts it raises (each trigger once per household and year).

        An event that cannot be applied (the rules engine refuses the snapshot it leads to) leaves the
        household as it was and raises `EventNotApplied`, so the caller rejects that event alone.
        """
        scored = int(self.households[event.household_id]["year"])
        if event.date.year < scored:  # the snapshot starts at the scored year: an earlier event cannot change it
            raise EventNotApplied(f"dated {event.date}, before the year {scored} the household was scored in / "
                                  f"事件日期早于该户的评定年度（{scored} 年）")
        key = (event.household_id, event.date.year)
        before = copy.deepcopy(self.years.get(key))
        try:
            return self._apply(event)
        except MissingParameters:  # a year with no line stops the whole run (not one rejected event)
            raise
        except Exception as exc:  # durable_rules raises bare Exceptions (e.g. error 202)
            if before is None:
                self.years.pop(key, None)
            else:
                self.years[key] = before
            raise EventNotApplied(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    def _apply(self, event: Event) -> list[Proposal]:
        year = event.date.year
        if year not in self._years_checked:  # a year with no line stops the monitor: no silent "no alert"
            require_parameters(self.book, [year])
            self._years_checked.add(year)
        state = self.years.setdefault((event.household_id, year), Year())
        if event.kind in RIGID:
            state.rigid += event.amount or 0.0
            state.cause = state.cause or RIGID[event.kind]
        elif event.kind == "income_report":
            state.income = event.amount
        elif event.kind == "job_loss":
            state.job_loss += event.amount or 0.0
        elif event.kind == "disability_certified":
            state.disabled += 1
            state.cause = state.cause or "因残"
        row = self.snapshot(event.household_id, year)
        fact = household_fact(self.book, row, event.household_id)
        fired = [c for c in self.rules.fired(fact) if c not in state.raised]
        if NO_LABOUR in fired and event.kind != "disability_certified":
            fired.remove(NO_LABOUR)  # raised by a new disability only, never by the snapshot alone
        proposals = []
        for name in fired:
            state.raised.add(name)
            rule = self.book.rules[name]
            observed = {n: fact.get(n) for n in ex.names(rule.expr)}
            clauses = list(dict.fromkeys([*rule.clauses, "MON-5.1", "MON-3"]))
            message = f"{rule.citation} {rule.id}: {rule.description.zh} / {rule.description.en}"
            proposals.append(Proposal(event.household_id, event, name, clauses, observed, message))
        return proposals

