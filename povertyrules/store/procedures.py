"""Procedure records (ID-4, EX-2, MON-3): steps in the order `rules/procedures/steps.yaml` gives.

A step may be recorded only as the next one due, on or after the previous step's date. An objection recorded
at a publicity step sends the procedure back to the step the rules name. A procedure is complete — and the
household's status final — when its last step is recorded in order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlmodel import Session

from povertyrules.errors import PovertyRulesError
from povertyrules.lang.rulebook import RuleBook
from povertyrules.store.database import stored_form
from povertyrules.store.models import ProcedureStep


class ProcedureError(PovertyRulesError):
    """A step recorded out of order, with an unknown name, or with a date before the previous step."""


@dataclass
class ProcedureState:
    procedure: str
    clause: str
    steps: list[ProcedureStep]
    next_step: str | None  # None when complete

    @property
    def complete(self) -> bool:
        return self.next_step is None


def _spec(book: RuleBook, procedure: str) -> dict:
    if procedure not in book.procedures:
        raise ProcedureError(f"unknown procedure '{procedure}'; known: {', '.join(book.procedures)}")
    return book.procedures[procedure]


def replay(book: RuleBook, procedure: str, steps: list[ProcedureStep]) -> str | None:
    """The step due after `steps` (None when complete); raises if the steps are not in order."""
    order = [s["id"] for s in _spec(book, procedure)["steps"]]
    by_id = {s["id"]: s for s in _spec(book, procedure)["steps"]}
    position, last_date = 0, None
    for step in steps:
        if position >= len(order) or step.step != order[position]:
            due = order[position] if position < len(order) else "(none: complete)"
            raise ProcedureError(f"step '{step.step}' is out of order; the step due is '{due}'")
        if last_date and step.date < last_date:
            raise ProcedureError(f"step '{step.step}' is dated {step.date}, before the previous step ({last_date})")
        last_date = step.date
        spec = by_id[step.step]
        if step.objection:
            if not spec.get("publicity"):
                raise ProcedureError(f"step '{step.step}' is not a publicity step; objections are raised at those")
            position = order.index(spec["objection_returns_to"])
        else:
            position += 1
    return order[position] if position < len(order) else None


def steps_of(engine: Engine, household_id: str, procedure: str) -> list[ProcedureStep]:
    with Session(engine) as session:
        query = (select(ProcedureStep).where(ProcedureStep.household_id == stored_form(engine, household_id),
                                             ProcedureStep.procedure == procedure).order_by(ProcedureStep.id))
        return list(session.execute(query).scalars())


def state(engine: Engine, book: RuleBook, household_id: str, procedure: str) -> ProcedureState:
    steps = steps_of(engine, household_id, procedure)
    return ProcedureState(procedure, _spec(book, procedure)["clause"], steps, replay(book, procedure, steps))


def record_step(engine: Engine, book: RuleBook, household_id: str, procedure: str, step: str, date: dt.date,
                actor: str, objection: bool = False, note: str | None = None) -> ProcedureState:
    """Append a step after checking it is the one due (and, for `source`, a known source in the note)."""
    spec = _spec(book, procedure)
    known = [s["id"] for s in spec["steps"]]
    if step not in known:
        raise ProcedureError(f"unknown step '{step}' for {procedure}; steps: {', '.join(known)}")
    sources = next(s for s in spec["steps"] if s["id"] == step).get("sources")
    if sources and note not in sources:
        raise ProcedureError(f"step '{step}' needs --note naming the source: {', '.join(sources)}")
    new = ProcedureStep(household_id=stored_form(engine, household_id), procedure=procedure, step=step, date=date,
                        actor=actor, objection=objection, note=note, recorded_at=dt.datetime.now(dt.UTC))
    replay(book, procedure, [*steps_of(engine, household_id, procedure), new])  # raises when out of order
    with Session(engine) as session:
        session.add(new)
        session.commit()
    return state(engine, book, household_id, procedure)


#: the outcome that starts each decision's procedure before the status is final (ID-4, EX-2, MON-3)
NEEDS_PROCEDURE = {"identification": ("poor",), "exit": ("eligible",),
                   "monitoring": ("unstable_exited", "edge", "sudden_hardship")}


def procedures_of(engine: Engine, book: RuleBook, decision) -> dict[str, dict]:
    """The procedure each of a stored decision's outcomes needs before it is final, and its state: the steps
    done (with their labels, by whom, when), the next step and whether the procedure is complete."""
    found = {}
    for name, outcomes in NEEDS_PROCEDURE.items():
        if getattr(decision, name) in outcomes and name in book.procedures:
            s = state(engine, book, decision.household_id, name)
            labels = {x["id"]: {"zh": x["zh"], "en": x["en"]} for x in book.procedures[name]["steps"]}
            found[name] = {"clause": s.clause, "complete": s.complete, "next_step": s.next_step,
                           "next_label": labels.get(s.next_step) if s.next_step else None,
                           "steps": [{"step": x.step, "label": labels.get(x.step, {"zh": x.step, "en": x.step}),
                                      "date": x.date, "actor": x.actor, "objection": x.objection, "note": x.note}
                                     for x in s.steps]}
    return found
