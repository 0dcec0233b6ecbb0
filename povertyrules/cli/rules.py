"""`povertyrules rules …`: check rule files and run their test cases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from povertyrules.cli.common import MaskingConsole, ProvinceOption, fail_on_errors
from povertyrules.errors import RuleErrors

app = typer.Typer(help="Check and test rule files.", no_args_is_help=True)
console = MaskingConsole()

RulesOption = Annotated[Path | None, typer.Option("--rules", help="Rules folder (default: shipped).")]
OverrideOption = Annotated[list[Path] | None, typer.Option(help="County override file or folder (repeatable).")]


def _parse_years(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


@app.command()
@fail_on_errors
def check(
    rules_dir: RulesOption = None,
    override: OverrideOption = None,
    province: ProvinceOption = None,
    years: Annotated[str, typer.Option(help="Years the parameters must cover, e.g. 2014-2020.")] = "2014-2020",
) -> None:
    """Validate rule files: expressions parse, names and types resolve, clauses exist, parameters cover years."""
    from povertyrules.lang.check import check_rulebook
    from povertyrules.lang.rulebook import load_rulebook

    try:
        book = load_rulebook(rules_dir, override, province=province)
    except RuleErrors as exc:
        for error in exc.errors:
            console.print(f"[red]✗[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(1) from None
    report = check_rulebook(book, _parse_years(years))
    for note in report.notes:
        console.print(f"  note: {escape(str(note))}", highlight=False)
    for problem in report.problems:
        console.print(f"[red]✗[/red] {escape(str(problem))}", highlight=False)
    rule_count = sum(1 for r in book.rules.values())
    console.print(f"{rule_count} rules, {len(book.decisions)} decisions, {len(book.parameters)} parameters; "
                  f"rules_version {book.version}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
    console.print("[green]✓ rules check passed[/green]")


@app.command("test")
@fail_on_errors
def test_cases(
    rules_dir: RulesOption = None,
    override: OverrideOption = None,
    province: ProvinceOption = None,
    cases: Annotated[Path | None, typer.Option(help="Folder of test cases (default: RULES/tests).")] = None,
) -> None:
    """Run the rule test cases (rules/tests/*.yaml) against the rules, with any county overrides."""
    from povertyrules.lang.cases import load_cases, run_case
    from povertyrules.lang.rulebook import load_rulebook

    book = load_rulebook(rules_dir, override, province=province)
    found = load_cases(cases or book.root / "tests")
    failed = 0
    for case in found:
        problems = run_case(book, case)
        if problems:
            failed += 1
            console.print("[red]✗[/red] " + escape(f"{case.name} ({case.file})\n    " + "\n    ".join(problems)),
                          highlight=False)
    console.print(f"{len(found) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)
