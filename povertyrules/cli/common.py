"""What the CLI command groups share: turning known errors into clear messages and exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from povertyrules.errors import PovertyRulesError

console = Console(stderr=True)


def fail_on_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a `PovertyRulesError` as a message (no traceback) and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PovertyRulesError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
