"""`povertyrules users add` and `povertyrules access-log`: who may read the store over the network, and
who read what (查询留痕)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from povertyrules.cli.audit import DbOption
from povertyrules.cli.common import MaskingConsole, fail_on_errors

users = typer.Typer(help="Users of the inspector pages (needed to serve beyond loopback).", no_args_is_help=True)
console = MaskingConsole()


@users.command("add")
@fail_on_errors
def add(name: Annotated[str, typer.Argument(help="The user's login name.")],
        password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                              help="At least 8 characters (asked for when not given).")],
        db: DbOption = None) -> None:
    """Add a user; the store keeps a salted scrypt hash of the password, never the password."""
    from povertyrules.store.access import add_user
    from povertyrules.store.database import connect

    add_user(connect(db), name, password)
    console.print(f"user {escape(name)} added", highlight=False)


@fail_on_errors
def access_log(household: Annotated[str | None, typer.Option(help="Only reads of this household.")] = None,
               limit: Annotated[int, typer.Option(help="The latest N reads.")] = 100,
               db: DbOption = None) -> None:
    """Every page and API read of the inspector: who, when, what, which household (append-only)."""
    from povertyrules.store.access import access_log as entries
    from povertyrules.store.database import connect

    table = Table("time", "user", "client", "request", "household", "status")
    for e in entries(connect(db, must_exist=True), household, limit):
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", escape(e.user), escape(e.client or ""),
                      escape(f"{e.method} {e.path}"), escape(e.household_id or ""), str(e.status))
    console.print(table)
