"""Event-driven monitoring: `monitor` processes department alerts and reports, `alerts` lists what they
raised, `confirm` records the county's decision (MON-3, MON-5.1)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from povertyrules.cli.audit import DbOption
from povertyrules.cli.common import (
    MaskingConsole,
    OverrideOption,
    ProvinceOption,
    RulesOption,
    SetOption,
    fail_on_errors,
    parse_sets,
)

console = MaskingConsole()
SHOWN = 20  # alerts printed; `povertyrules alerts` lists them all
FLUSH_ALERTS, FLUSH_SECONDS = 200, 0.5  # alerts are committed at least this often


@fail_on_errors
def monitor(
    events: Annotated[Path | None, typer.Argument(help="Events: .jsonl or .csv with household_id, date, source, "
                                                       "kind, amount, note.")] = None,
    households: Annotated[Path | None, typer.Option(help="Household spreadsheet to start from "
                                                         "(default: the latest stored run).")] = None,
    year: Annotated[int | None, typer.Option(help="Year of the household spreadsheet's rows without one.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where rejected events go (default: EVENTS.rejects.jsonl).")]
    = None,
    follow: Annotated[bool, typer.Option(help="Keep reading the file as it grows.")] = False,
    idle_seconds: Annotated[float | None, typer.Option(help="With --follow: stop after this long without new "
                                                            "events (default: never).")] = None,
    register: Annotated[list[Path] | None, typer.Option(help="Department register whose records of the 12 months "
                                                        "up to --as-of arrive as events (repeatable, MON-5.1).")]
    = None,
    people: Annotated[Path | None, typer.Option(help="With --register: the person-row file (e.g. the national "
                                                     "export) whose 证件号码 link records to households.")] = None,
    as_of: Annotated[str | None, typer.Option(help="With --register: the end of the 12-month window "
                                                   "(YYYY-MM-DD; default today).")] = None,
    rules_dir: RulesOption = None,
    override: OverrideOption = None,
    set_: SetOption = None,
    db: DbOption = None,
    province: ProvinceOption = None,
) -> None:
    """Process events; each newly holding trigger is stored as an alert awaiting county confirmation."""
    from povertyrules.errors import MissingParameters
    from povertyrules.io.tables import json_line
    from povertyrules.monitor.alerts import store_alerts
    from povertyrules.monitor.events import Reject, raw_records, validate
    from povertyrules.monitor.households import from_file, from_store
    from povertyrules.monitor.stream import EventNotApplied, Monitor
    from povertyrules.privacy import protect
    from povertyrules.scoring import resolve_rules
    from povertyrules.store.database import connect, stored_form
    from povertyrules.store.rulebooks import rulebook_for

    engine = connect(db)
    if households:
        book = resolve_rules(rules_dir, parse_sets(set_) or None, override, province)
        origin = f"rules_version {book.version}"
    else:
        book, origin = rulebook_for(engine, rules_dir, override, parse_sets(set_), province=province)
    console.print(f"rules: {escape(origin)}", highlight=False, soft_wrap=True)
    state = from_file(households, year) if households else from_store(engine, book)
    rename = None if households else (lambda hid: stored_form(engine, hid))
    if not households:
        from povertyrules.cli.store import warn_if_tampered

        warn_if_tampered(engine)
    if not state:
        raise typer.BadParameter("no households: score with --store first, or give --households")
    watcher = Monitor(book, state)
    if register:
        from povertyrules.cli.registers import monitor_registers

        counts = monitor_registers(engine, book, watcher, state, register, people or households, as_of, console)
        if events is None:
            return
    if events is None:
        raise typer.BadParameter("give an events file, or --register")
    rejects = rejects or events.with_name(f"{events.name}.rejects.jsonl")
    counts = {"read": 0, "processed": 0, "rejected": 0, "alerts": 0, "known": 0}
    next_line, idle_since = 1, time.monotonic()
    started = time.perf_counter()
    pending: list = []
    shown = 0
    applied: set[str] = set()  # events by content: the same report twice is one event

    def flush() -> None:  # commit what has been raised so far: a crash later loses nothing processed
        nonlocal shown
        if not pending:
            return
        new = len(store_alerts(engine, pending, str(events)))
        counts["alerts"] += new
        counts["known"] += len(pending) - new
        for p in pending[:max(0, SHOWN - shown)]:
            console.print(f"alert: {escape(p.household_id)} {p.trigger} ({','.join(p.clauses)}) after "
                          f"{p.event.kind} on {p.event.date}", highlight=False, soft_wrap=True)
        shown += len(pending)
        pending.clear()

    with open(rejects, "a", encoding="utf-8") as rejected:
        try:
            while True:
                seen, last_flush = False, time.monotonic()
                for number, raw, record in raw_records(events, next_line):
                    seen, next_line = True, number + 1
                    counts["read"] += 1
                    item = validate(number, raw, record, state, rename=rename)
                    if isinstance(item, Reject) or item.key in applied:
                        item = item if isinstance(item, Reject) else Reject(
                            number, raw, "the same event (by content) was already read / 重复事件")
                    else:
                        try:
                            pending.extend(watcher.process(item))
                            applied.add(item.key)
                        except MissingParameters:  # keep the alerts raised so far, then stop with the message
                            raise
                        except EventNotApplied as exc:
                            item = Reject(number, raw, f"cannot be applied: {exc} / 无法处理")
                    if isinstance(item, Reject):
                        counts["rejected"] += 1
                        rejected.write(json_line(protect(item.as_dict())))
                        console.print(f"[yellow]line {number}: {escape(item.reason)}[/yellow]", highlight=False,
                                      soft_wrap=True)
                        continue
                    counts["processed"] += 1
                    if len(pending) >= FLUSH_ALERTS or time.monotonic() - last_flush > FLUSH_SECONDS:
                        flush()
                        rejected.flush()
                        last_flush = time.monotonic()
                flush()
                if not follow:
                    break
                now = time.monotonic()
                if seen:
                    idle_since = now
                elif idle_seconds is not None and now - idle_since >= idle_seconds:
                    break
                time.sleep(0.2)
        finally:
            flush()
    elapsed = time.perf_counter() - started
    again = f" ({counts['known']} already stored by an earlier reading)" if counts["known"] else ""
    console.print(f"events read {counts['read']} = processed {counts['processed']} + rejected "
                  f"{counts['rejected']} (→ {escape(str(rejects))}); alerts raised {counts['alerts']}{again}; "
                  f"{elapsed:.2f} s", highlight=False, soft_wrap=True)


@fail_on_errors
def alerts(pending: Annotated[bool, typer.Option(help="Only alerts the county has not decided.")] = False,
           db: DbOption = None) -> None:
    """Alerts raised by events, with the county's decision where there is one."""
    from povertyrules.cli.store import warn_if_tampered
    from povertyrules.monitor.alerts import list_alerts
    from povertyrules.store.database import connect

    engine = connect(db, must_exist=True)
    warn_if_tampered(engine)
    found = list_alerts(engine, pending)
    for alert, decision in found:
        status = "pending" if decision is None else ("confirmed" if decision.confirmed else "rejected")
        amount = "" if alert.amount is None else f" {alert.amount:g}"
        console.print(escape(f"{alert.id}\t{alert.household_id}\t{alert.trigger}\t{alert.clauses}\t{alert.kind}"
                             f"{amount} ({alert.source}, {alert.event_date}, {alert.event_file}:{alert.event_line})"
                             f"\t{status}"),
                      soft_wrap=True, highlight=False)
    console.print(f"{len(found)} alert(s)", highlight=False)


@fail_on_errors
def confirm(alert_id: Annotated[int, typer.Argument()],
            actor: Annotated[str, typer.Option(help="Who decided (the county poverty office).")],
            reject: Annotated[bool, typer.Option(help="Reject instead of confirming.")] = False,
            note: Annotated[str | None, typer.Option()] = None,
            rules_dir: RulesOption = None, override: OverrideOption = None, set_: SetOption = None,
            db: DbOption = None) -> None:
    """Record the county's decision on an alert (MON-3); a confirmation records the procedure steps too, in the
    order of the rules the household's run was scored with (or those given)."""
    from sqlmodel import Session

    from povertyrules.monitor.alerts import decide_alert
    from povertyrules.store.database import connect
    from povertyrules.store.models import Alert
    from povertyrules.store.rulebooks import rulebook_for

    engine = connect(db, must_exist=True)  # an alert is only ever in a store that exists
    with Session(engine) as session:
        alert = session.get(Alert, alert_id)
    book, _ = rulebook_for(engine, rules_dir, override, parse_sets(set_),
                           household_id=alert.household_id if alert else None)
    decision = decide_alert(engine, book, alert_id, actor, not reject, note)
    console.print(f"alert {alert_id} {'confirmed as a monitoring object' if decision.confirmed else 'rejected'}",
                  highlight=False)
