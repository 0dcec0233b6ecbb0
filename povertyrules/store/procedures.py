"""Procedure records (ID-4, EX-2, MON-3): steps in the order `rules/procedures/steps.yaml` gives.

A step may be recorded only as the next one due, on or after the previous step's date. An objection recorded
at a publicity step sends the procedure back to the step the rules name. A procedure is complete — and the
household's status final — when its last step is recorded in order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path

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
        raise ProcedureError(f"没有名为“{procedure}”的程序 / unknown procedure '{procedure}'; known: "
                             f"{', '.join(book.procedures)}")
    return book.procedures[procedure]


def replay(book: RuleBook, procedure: str, steps: list[ProcedureStep]) -> str | None:
    """The step due after `steps` (None when complete); raises if the steps are not in order."""
    order = [s["id"] for s in _spec(book, procedure)["steps"]]
    by_id = {s["id"]: s for s in _spec(book, procedure)["steps"]}
    position, last_date = 0, None
    def named(step_id: str, lang: str) -> str:
        return by_id[step_id][lang] if step_id in by_id else step_id

    for step in steps:
        if position >= len(order) or step.step != order[position]:
            due_zh, due_en = (named(order[position], "zh"), named(order[position], "en")) if position < len(order) \
                else ("无（程序已完成）", "none: the procedure is complete")
            raise ProcedureError(f"步骤“{named(step.step, 'zh')}”不合顺序，现应进行：{due_zh} / step "
                                 f"'{named(step.step, 'en')}' is out of order; the step due is '{due_en}'")
        if last_date and step.date < last_date:
            raise ProcedureError(f"步骤“{named(step.step, 'zh')}”的日期 {step.date} 早于上一步（{last_date}） / step "
                                 f"'{named(step.step, 'en')}' is dated {step.date}, before the previous step "
                                 f"({last_date})")
        last_date = step.date
        spec = by_id[step.step]
        if step.objection:
            if not spec.get("publicity"):
                raise ProcedureError(f"步骤“{spec['zh']}”不是公示环节，异议只能在公示环节提出 / step '{spec['en']}' "
                                     f"is not a publicity step; objections are raised at those")
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
    spec_step = next(s for s in spec["steps"] if s["id"] == step)
    sources = spec_step.get("sources")
    if sources:
        names = spec_step.get("source_names") or {}
        spelled = {k: k for k in sources} | {v[lang]: k for k, v in names.items() for lang in ("zh", "en")}
        if (note or "").strip() not in spelled:
            zh = "、".join(names.get(k, {}).get("zh", k) for k in sources)
            label = next((x["zh"] for x in spec["steps"] if x["id"] == step), step)
            raise ProcedureError(f"“{label}”一步须以 --note 写明来源：{zh} / step '{step}' needs --note naming "
                                 f"the source: {', '.join(sources)}")
        note = spelled[(note or "").strip()]
    new = ProcedureStep(household_id=stored_form(engine, household_id), procedure=procedure, step=step, date=date,
                        actor=actor, objection=objection, note=note, recorded_at=dt.datetime.now(dt.UTC))
    replay(book, procedure, [*steps_of(engine, household_id, procedure), new])  # raises when out of order
    with Session(engine) as session:
        session.add(new)
        session.commit()
    return state(engine, book, household_id, procedure)


def procedures_of(engine: Engine, book: RuleBook, decision, outcomes: dict[str, str | None] | None = None,
                  ) -> dict[str, dict]:
    """The procedures of a stored decision and their state — each one with steps recorded, and each that one
    of its outcomes makes due (`due` in rules/procedures/steps.yaml: the outcome, for a household of the
    registered status named): the steps done (with their labels, by whom, when), the next step and whether
    the procedure is complete. `outcomes` adds outcomes of decisions the store keeps no column for (risk
    removal, from the explanation)."""
    import json

    registered = json.loads(decision.inputs or "{}").get("registered_status") if decision.inputs else None
    found = {}
    for name, spec in book.procedures.items():
        s = state(engine, book, decision.household_id, name)
        due = spec.get("due") or _shipped(name).get("due")  # a run stored before steps.yaml said when
        outcome = (outcomes or {}).get(due["decision"]) if due else None
        if due and outcome is None:
            outcome = getattr(decision, due["decision"], None)
        needed = bool(due) and outcome in due["outcomes"] and (
            due.get("registered") is None or (registered or "none") in due["registered"])
        if not (s.steps or needed):
            continue
        labels = {x["id"]: {"zh": x["zh"], "en": x["en"]} for x in spec["steps"]}
        found[name] = {"name": spec.get("name") or {"zh": name, "en": name}, "clause": s.clause,
                       "complete": s.complete, "next_step": s.next_step,
                       "next_label": labels.get(s.next_step) if s.next_step else None,
                       "steps": [{"step": x.step, "label": labels.get(x.step, {"zh": x.step, "en": x.step}),
                                  "date": x.date, "actor": x.actor, "objection": x.objection, "note": x.note,
                                  "note_label": {lang: source_label(book, name, x.note, lang)
                                                 for lang in ("zh", "en")}}
                                 for x in s.steps]}
    return found


def source_label(book: RuleBook, procedure: str, note: str | None, lang: str) -> str:
    """A step's note as a reader names it: a source's label (rules/procedures/steps.yaml), else the note."""
    for step in book.procedures.get(procedure, {}).get("steps", []):
        named = (step.get("source_names") or {}).get(note or "")
        if named:
            return named["zh" if lang == "zh" else "en"]
    return note or ""


def _shipped(procedure: str) -> dict:
    """A procedure as today's rules/procedures/steps.yaml states it ({} where it has none)."""
    from povertyrules.lang.rulebook import _read_procedures
    from povertyrules.shipped import rules_folder

    return _shipped_procedures(str(rules_folder() / "procedures" / "steps.yaml"), _read_procedures).get(procedure, {})


@cache
def _shipped_procedures(path: str, read) -> dict:
    return read(Path(path))
