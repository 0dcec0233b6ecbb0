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


def summary_table(result: Any, book: Any = None, lang: str = "en") -> Any:
    """Households per status of each decision, as `score` prints them (one process or a cluster); with the
    rule book and ``lang="zh"``, decisions and statuses by their Chinese labels from the rule files."""
    from rich.table import Table

    from povertyrules.store.changes import decision_name

    zh = lang == "zh" and book is not None
    title = f"判定结果 — 规则版本 {result.rules_version}" if zh else f"decisions — rules_version {result.rules_version}"
    table = Table(title=title)
    for column, header in (("decision", "决定"), ("status", "结果"), ("count", "户数")):
        table.add_column(header if zh else column, justify="right" if column == "count" else "left")
    for row in result.summary().itertuples(index=False):
        if zh and row.decision in book.decisions:
            status = "" if str(row.status) == "(blank)" else str(row.status)
            known = [*book.decisions[row.decision].values, "review", ""]
            table.add_row(decision_name(row.decision, "zh"),
                          book.decisions[row.decision].label(status, "zh") if status in known else status,
                          f"{row.count:,}")
        else:
            table.add_row(row.decision, str(row.status), str(row.count))
    return table
