"""Event-driven monitoring: `monitor` processes department alerts and reports, `alerts` lists what they
raised, `confirm` records the county's decision (MON-3, MON-5.1)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from povertyrules.cli.audit import DbOption
from povertyrules.cli.common import fail_on_errors

console = Console()
SHOWN = 20  # alerts printed per batch of events; `povertyrules alerts` lists them all


@fail_on_errors
def monitor(
    events: Annotated[Path, typer.Argument(help="Events: .jsonl or .csv with household_id, date, source, kind, "
                                                "amount, note.")],
    households: Annotated[Path | None, typer.Option(help="Household spreadsheet to start from "
                                                         "(default: the latest stored run).")] = None,
    year: Annotated[int | None, typer.Option(help="Year of the household spreadsheet's rows without one.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where rejected events go (default: EVENTS.rejects.jsonl).")]
    = None,
    follow: Annotated[bool, typer.Option(help="Keep reading the file as it grows.")] = False,
    idle_seconds: Annotated[float | None, typer.Option(help="With --follow: stop after this long without new "
                                                            "events (default: never).")] = None,
    db: DbOption = None,
) -> None:
    """Process events; each newly holding trigger is stored as an alert awaiting county confirmation."""
    from povertyrules.errors import MissingParameters
    from povertyrules.lang.rulebook import load_rulebook
    from povertyrules.monitor.alerts import store_alerts
    from povertyrules.monitor.events import raw_records, validate
    from povertyrules.monitor.households import from_file, from_store
    from povertyrules.monitor.stream import Monitor
    from povertyrules.store.database import connect

    engine, book = connect(db), load_rulebook()
    state = from_file(households, year) if households else from_store(engine, book)
    if not state:
        raise typer.BadParameter("no households: score with --store first, or give --households")
    watcher = Monitor(book, state)
    rejects = rejects or events.with_name(f"{events.name}.rejects.jsonl")
    counts = {"read": 0, "processed": 0, "rejected": 0, "alerts": 0}
    next_line, idle_since = 1, time.monotonic()
    started = time.perf_counter()
    with open(rejects, "a", encoding="utf-8") as rejected:
        while True:
            proposals, seen = [], False
            for number, raw, record in raw_records(events, next_line):
                seen, next_line = True, number + 1
                counts["read"] += 1
                item = validate(number, raw, record, state)
                if hasattr(item, "reason"):
                    counts["rejected"] += 1
                    rejected.write(json.dumps(item.as_dict(), ensure_ascii=False) + "\n")
                    console.print(f"[yellow]line {number}: {item.reason}[/yellow]", highlight=False, soft_wrap=True)
                    continue
                counts["processed"] += 1
                try:
                    proposals.extend(watcher.process(item))
                except MissingParameters:  # keep the alerts raised so far, then stop with the message
                    if proposals:
                        store_alerts(engine, proposals, str(events))
                    raise
            if proposals:
                store_alerts(engine, proposals, str(events))
                counts["alerts"] += len(proposals)
                for p in proposals[:SHOWN]:
                    console.print(f"alert: {p.household_id} {p.trigger} ({','.join(p.clauses)}) after "
                                  f"{p.event.kind} on {p.event.date}", highlight=False, soft_wrap=True)
            if not follow:
                break
            now = time.monotonic()
            if seen:
                idle_since = now
            elif idle_seconds is not None and now - idle_since >= idle_seconds:
                break
            time.sleep(0.2)
    elapsed = time.perf_counter() - started
    console.print(f"events read {counts['read']} = processed {counts['processed']} + rejected "
                  f"{counts['rejected']} (→ {rejects}); alerts raised {counts['alerts']}; {elapsed:.2f} s",
                  highlight=False, soft_wrap=True)


@fail_on_errors
def alerts(pending: Annotated[bool, typer.Option(help="Only alerts the county has not decided.")] = False,
           db: DbOption = None) -> None:
    """Alerts raised by events, with the county's decision where there is one."""
    from povertyrules.monitor.alerts import list_alerts
    from povertyrules.store.database import connect

    found = list_alerts(connect(db, must_exist=True), pending)
    for alert, decision in found:
        status = "pending" if decision is None else ("confirmed" if decision.confirmed else "rejected")
        amount = "" if alert.amount is None else f" {alert.amount:g}"
        console.print(f"{alert.id}\t{alert.household_id}\t{alert.trigger}\t{alert.clauses}\t{alert.kind}{amount} "
                      f"({alert.source}, {alert.event_date}, {alert.event_file}:{alert.event_line})\t{status}",
                      soft_wrap=True, highlight=False)
    console.print(f"{len(found)} alert(s)", highlight=False)


@fail_on_errors
def confirm(alert_id: Annotated[int, typer.Argument()],
            actor: Annotated[str, typer.Option(help="Who decided (the county poverty office).")],
            reject: Annotated[bool, typer.Option(help="Reject instead of confirming.")] = False,
            note: Annotated[str | None, typer.Option()] = None,
            db: DbOption = None) -> None:
    """Record the county's decision on an alert (MON-3); a confirmation records the procedure steps too."""
    from povertyrules.lang.rulebook import load_rulebook
    from povertyrules.monitor.alerts import decide_alert
    from povertyrules.store.database import connect

    decision = decide_alert(connect(db), load_rulebook(), alert_id, actor, not reject, note)
    console.print(f"alert {alert_id} {'confirmed as a monitoring object' if decision.confirmed else 'rejected'}",
                  highlight=False)
