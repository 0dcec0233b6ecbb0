"""The `povertyrules` command: score spreadsheets, check rule files, make synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from povertyrules.cli import audit, datasets, monitor, notebook, procedure, rules
from povertyrules.cli.common import fail_on_errors, parse_sets
from povertyrules.io.tables import TableWriter, member_sheet, read_table, write_table

app = typer.Typer(help="Rules-as-code for targeted poverty alleviation: identification, exit, monitoring.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(rules.app, name="rules")
app.add_typer(datasets.app, name="datasets")
app.add_typer(procedure.app, name="procedure")
app.add_typer(notebook.app, name="notebook")
for command in (audit.explain, audit.history, audit.diff, audit.watchlist, audit.runs, monitor.monitor,
                monitor.alerts, monitor.confirm):
    app.command()(command)
console = Console(stderr=True)

PROGRESS_FROM = 100_000  # rows; smaller inputs finish before a bar would help


@app.command()
@fail_on_errors
def score(
    input: Annotated[Path, typer.Argument(help="Households: .csv, .xlsx or .parquet (Chinese or English headers).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Decisions file: .csv, .xlsx or .parquet.")],
    members: Annotated[Path | None, typer.Option(help="Members file (ID-1); default: a 'members' sheet.")] = None,
    year: Annotated[int | None, typer.Option(help="Evaluation year for rows without 年度/year.")] = None,
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Rules folder (default: shipped).")] = None,
    override: Annotated[list[Path] | None, typer.Option(help="County override file or folder (repeatable).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="What-if: PARAMETER=VALUE (repeatable).")] = None,
    lang: Annotated[str, typer.Option(help="Language of the reasons: zh or en.")] = "zh",
    store: Annotated[bool, typer.Option(help="Record the run in the audit store and print its id.")] = False,
    db: audit.DbOption = None,
    operator: Annotated[str | None, typer.Option(help="Who ran it (default: the login name).")] = None,
    dask: Annotated[bool, typer.Option(help="Score the files INPUT names ('dir/*.parquet') on Dask, one task per "
                                            "file; OUT becomes a folder of Parquet parts.")] = False,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (implies --dask; default: a "
                                                       "LocalCluster on this machine).")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster workers (default: one per core).")] = None,
) -> None:
    """Score every household and write decisions with cited reasons; unreadable rows go to an errors file."""
    if dask or scheduler:
        from povertyrules.cli.cluster import score_on_dask

        return score_on_dask(input, output, members, year, rules_dir, override, parse_sets(set_), lang, store, db,
                             operator, scheduler, workers)
    from povertyrules.scoring import resolve_rules
    from povertyrules.scoring import score as run_score

    book = resolve_rules(rules_dir, parse_sets(set_), override)
    frame = read_table(input)
    member_frame = read_table(members) if members else member_sheet(input)
    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=len(frame) < PROGRESS_FROM) as bar, TableWriter(output) as writer:
        task = bar.add_task("score", total=len(frame))
        result = run_score(frame, year=year, rules=book, members=member_frame, lang=lang, file=str(input),
                           members_file=str(members) if members else f"{input}#members",
                           progress=lambda k: bar.advance(task, k), keep_records=store,
                           sink=None if store else writer.write)
        del frame
        if store:  # the store needs every decision in memory anyway
            writer.write(result.decisions)
    errors_path = output.with_name(f"{output.stem}.errors{output.suffix}")
    write_table(result.errors, errors_path)
    _print_summary(result, output, errors_path)
    if store:
        from povertyrules.store.database import connect
        from povertyrules.store.runs import record_run

        run_id = record_run(connect(db), result, input, operator, lang)
        console.print(f"stored as run {run_id}")
        print(run_id)


@app.command()
@fail_on_errors
def serve(
    db: audit.DbOption = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    show_identities: Annotated[bool, typer.Option(help="Show identity-card and phone numbers unmasked.")] = False,
) -> None:
    """Serve the read-only inspector pages and JSON API over the audit store."""
    import uvicorn

    from povertyrules.web.app import create_app

    uvicorn.run(create_app(db, show_identities), host=host, port=port, log_level="warning")


def _print_summary(result, output: Path, errors_path: Path) -> None:
    table = Table(title=f"decisions — rules_version {result.rules_version}")
    for column in ("decision", "status", "count"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for row in result.summary().itertuples(index=False):
        table.add_row(row.decision, str(row.status), str(row.count))
    console.print(table)
    counts = result.accounting()
    console.print(f"input rows {counts['input_rows']} = decided {counts['decided']} + rows with errors "
                  f"{counts['error_rows']}")
    console.print(f"decisions: {output}\nerrors:    {errors_path} ({result.error_lines} error lines)")
    if counts["input_rows"] != counts["decided"] + counts["error_rows"]:  # pragma: no cover - an invariant
        raise typer.Exit(3)


if __name__ == "__main__":  # pragma: no cover
    app()
