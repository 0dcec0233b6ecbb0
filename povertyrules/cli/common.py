"""What the CLI command groups share: turning known errors into clear messages and exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from povertyrules.errors import PovertyRulesError

console = Console(stderr=True)

#: ``--province 云南省``: the shipped province file whose monitoring lines apply from 2021 (M21-4)
ProvinceOption = Annotated[str | None, typer.Option(
    help="Province (Chinese name, e.g. 云南省) whose monitoring line applies: rules/provinces/<name>.yaml.")]


def fail_on_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a `PovertyRulesError` as a message (no traceback) and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PovertyRulesError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (values read as YAML scalars) for what-if parameter values."""
    values: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected PARAMETER=VALUE, got {item!r}")
        values[name.strip()] = yaml.safe_load(raw)
    return values
