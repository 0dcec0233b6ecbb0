"""`povertyrules procedure …`: record and show identification, exit and monitoring procedure steps."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from povertyrules.cli.audit import DbOption
from povertyrules.cli.common import fail_on_errors

app = typer.Typer(help="Procedure records (ID-4, EX-2, MON-3).", no_args_is_help=True)
console = Console()
Procedure = Annotated[str, typer.Option(help="identification, exit or monitoring.")]


@app.command()
@fail_on_errors
def record(
    household_id: Annotated[str, typer.Argument()],
    step: Annotated[str, typer.Option(help="The step's id (see `procedure show`).")],
    actor: Annotated[str, typer.Option(help="Who did it.")],
    procedure: Procedure = "identification",
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
    objection: Annotated[bool, typer.Option(help="An objection was raised during this publicity step.")] = False,
    note: Annotated[str | None, typer.Option(help="A note (for monitoring's source step: the source).")] = None,
    db: DbOption = None,
) -> None:
    """Record the next step of a household's procedure; steps out of order are refused."""
    from povertyrules.lang.rulebook import load_rulebook
    from povertyrules.store.database import connect
    from povertyrules.store.procedures import record_step

    when = dt.date.fromisoformat(date) if date else dt.date.today()
    state = record_step(connect(db), load_rulebook(), household_id, procedure, step, when, actor, objection, note)
    console.print(f"recorded {procedure}/{step} for {household_id}; "
                  + ("procedure complete" if state.complete else f"next step: {state.next_step}"), highlight=False)


@app.command()
@fail_on_errors
def show(household_id: Annotated[str, typer.Argument()], procedure: Procedure = "identification",
         db: DbOption = None) -> None:
    """The recorded steps of a household's procedure, and the step due next."""
    from povertyrules.lang.rulebook import load_rulebook
    from povertyrules.store.database import connect
    from povertyrules.store.procedures import state as procedure_state

    book = load_rulebook()
    state = procedure_state(connect(db, must_exist=True), book, household_id, procedure)
    names = {s["id"]: f"{s['zh']} / {s['en']}" for s in book.procedures[procedure]["steps"]}
    table = Table("date", "step", "actor", "objection", "note", title=f"{procedure} ({state.clause})")
    for s in state.steps:
        table.add_row(str(s.date), names[s.step], s.actor, "yes" if s.objection else "", s.note or "")
    console.print(table)
    console.print("complete: the status is final" if state.complete else
                  f"in progress: next step {state.next_step} ({names[state.next_step]}); the status is not final",
                  highlight=False)
