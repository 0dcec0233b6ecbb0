"""What the CLI command groups share: turning known errors into clear messages and exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from povertyrules.errors import InputError, PovertyRulesError
from povertyrules.lang import safeyaml


class MaskingConsole(Console):
    """A rich console that masks identity and mobile numbers in everything it prints (tables too), unless
    the operator started the command with ``--show-identities``."""

    def render_str(self, text: str, *args: Any, **kwargs: Any):
        from povertyrules.privacy import protect

        return super().render_str(protect(text), *args, **kwargs)


console = MaskingConsole(stderr=True)

#: ``--province 云南省``: the shipped province file whose monitoring lines apply from 2021 (M21-4)
ProvinceOption = Annotated[str | None, typer.Option(
    help="Province (Chinese name, e.g. 云南省) whose monitoring line applies: rules/provinces/<name>.yaml.")]


def lang_choice(value: str) -> str:
    """`--lang`: zh or en (any other value is refused, not silently read as English)."""
    if value not in ("zh", "en"):
        raise typer.BadParameter(f"须为 zh 或 en，而不是“{value}” / must be zh or en, not '{value}'")
    return value


def fail_on_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a `PovertyRulesError` as a message (no traceback) and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PovertyRulesError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # a file that cannot be read or written: the system's reason, no traceback
            name = exc.filename if exc.filename is not None else ""
            reason = exc.strerror or exc.__class__.__name__
            message = f"无法读写文件 {name}（{reason}）/ cannot read or write {name}: {reason}"
            console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def refuse_overwriting(inputs: list[Path | None], outputs: list[Path]) -> None:
    """Stop before any work if an output file would replace one of the input files (a county's only copy of
    its roster scored onto itself), or if an output's name is a folder."""
    def same(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
        except OSError:
            return False

    for output in outputs:
        if output.is_dir():
            raise InputError("输出文件名是一个文件夹", "the output is a folder", file=str(output))
        for source in (Path(str(i).partition("#")[0]) for i in inputs if i is not None):
            if same(output, source):
                raise InputError("输出文件就是输入文件，写出会覆盖原表；请另取一个输出文件名",
                                 "the output is an input file and would overwrite it; choose another output name",
                                 file=str(output))


RulesOption = Annotated[Path | None, typer.Option("--rules", help="Rules folder (default: the rules the run was "
                                                                  "scored with).")]
OverrideOption = Annotated[list[Path] | None, typer.Option(help="County override file or folder (repeatable).")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="What-if: PARAMETER=VALUE (repeatable).")]


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (values read as YAML scalars) for what-if parameter values."""
    values: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected PARAMETER=VALUE, got {item!r}")
        if not name.strip():
            raise typer.BadParameter(f"expected PARAMETER=VALUE, got {item!r}")
        values[name.strip()] = safeyaml.loads(raw, file=f"--set {name.strip()}")
    return values


def summary_table(result: Any) -> Any:
    """Households per status of each decision, as `score` prints them (one process or a cluster)."""
    from rich.table import Table

    table = Table(title=f"decisions — rules_version {result.rules_version}")
    for column in ("decision", "status", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for row in result.summary().itertuples(index=False):
        table.add_row(row.decision, str(row.status), str(row.count))
    return table
