"""Alerts in the audit store: stored as proposals, listed, and confirmed or rejected by the county (MON-3)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from sqlalchemy import Engine, select
from sqlmodel import Session

from povertyrules.errors import PovertyRulesError
from povertyrules.lang.rulebook import RuleBook
from povertyrules.monitor.events import SOURCES
from povertyrules.monitor.stream import Proposal
from povertyrules.store.database import retrying, stored_form
from povertyrules.store.models import Alert, AlertDecision
from povertyrules.store.procedures import record_step, state


def alert_key(proposal: Proposal) -> str:
    """An alert's identity: the event's content and the trigger it raised (not the file or line)."""
    return hashlib.sha256(f"{proposal.event.key}:{proposal.trigger}".encode()).hexdigest()[:32]


def store_alerts(engine: Engine, proposals: list[Proposal], event_file: str) -> list[int]:
    """Store and commit the alerts not stored before (by content); returns the new alerts' ids."""
    now = dt.datetime.now(dt.UTC)
    keyed = {alert_key(p): p for p in proposals}
    return retrying(lambda: _store_new(engine, keyed, event_file, now))


def _store_new(engine: Engine, keyed: dict[str, Proposal], event_file: str, now: dt.datetime) -> list[int]:
    with Session(engine) as session:
        known = set(session.execute(select(Alert.event_key).where(Alert.event_key.in_(list(keyed)))).scalars()) \
            if keyed else set()
        alerts = [Alert(created_at=now, household_id=stored_form(engine, p.household_id), trigger=p.trigger,
                        clauses=",".join(p.clauses),
                        event_file=event_file, event_line=p.event.line, event_date=p.event.date,
                        source=p.event.source, kind=p.event.kind, amount=p.event.amount,
                        observed=json.dumps(p.observed, ensure_ascii=False, default=str), message=p.message,
                        event_key=key) for key, p in keyed.items() if key not in known]
        session.add_all(alerts)
        session.commit()
        return [int(a.id) for a in alerts]


def list_alerts(engine: Engine, pending: bool = False) -> list[tuple[Alert, AlertDecision | None]]:
    with Session(engine) as session:
        query = (select(Alert, AlertDecision).join(AlertDecision, AlertDecision.alert_id == Alert.id, isouter=True)
                 .order_by(Alert.id))
        rows = [(a, d) for a, d in session.execute(query).all()]
    return [(a, d) for a, d in rows if not pending or d is None]


def decide_alert(engine: Engine, book: RuleBook, alert_id: int, actor: str, confirmed: bool = True,
                 note: str | None = None) -> AlertDecision:
    """Record the county's decision once; a confirmation also records the MON-3 procedure steps."""
    with Session(engine) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise PovertyRulesError(f"no alert {alert_id} / 预警不存在")
        if session.execute(select(AlertDecision).where(AlertDecision.alert_id == alert_id)).first():
            raise PovertyRulesError(f"alert {alert_id} is already decided / 该预警已处理")
        household, source, date = alert.household_id, SOURCES[alert.source], alert.event_date
    today = dt.date.today()
    if confirmed:
        current = state(engine, book, household, "monitoring")
        if current.next_step == "source":
            record_step(engine, book, household, "monitoring", "source", date, alert.source, note=source)
            current = state(engine, book, household, "monitoring")
        if current.next_step == "county_confirmation":
            record_step(engine, book, household, "monitoring", "county_confirmation", max(today, date), actor,
                        note=f"alert {alert_id}")
    decision = AlertDecision(alert_id=alert_id, confirmed=confirmed, actor=actor, decided_at=dt.datetime.now(dt.UTC),
                             note=note)
    with Session(engine) as session:
        session.add(decision)
        session.commit()
        session.refresh(decision)
    return decision
