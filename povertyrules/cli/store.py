"""`povertyrules store …`: check that the audit store holds what was written to it."""

from __future__ import annotations

import typer
from rich.markup import escape

from povertyrules.cli.audit import DbOption
from povertyrules.cli.common import MaskingConsole, fail_on_errors

app = typer.Typer(help="The audit store's integrity.", no_args_is_help=True)
console = MaskingConsole()


@app.command()
@fail_on_errors
def verify(db: DbOption = None) -> None:
    """Recompute every run's digest and the chain between them; name the first run or row that no longer
    matches (exit 1)."""
    from povertyrules.store.database import connect
    from povertyrules.store.integrity import verify as verify_store

    report = verify_store(connect(db, must_exist=True))  # never an empty new store
    for problem in report.problems:
        console.print(f"[red]✗[/red] {escape(problem)}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)
    console.print(f"[green]✓[/green] {report.runs} runs verified; chain head {report.head or '—'}", highlight=False,
                  soft_wrap=True)


def warn_if_tampered(engine, household_id: str | None = None) -> None:
    """The cheap check every read command makes (with the rows of `household_id` re-hashed when a command
    shows one household): a warning on stderr when the store fails it."""
    from povertyrules.store.integrity import check_household, quick_check

    report = check_household(engine, household_id) if household_id else quick_check(engine)
    if not report.ok:
        warn = MaskingConsole(stderr=True)
        for problem in report.problems:
            warn.print(f"[bold red]WARNING: the audit store fails verification / 审计库校验失败:[/bold red] "
                       f"{escape(problem)} — run `povertyrules store verify`", highlight=False, soft_wrap=True)
