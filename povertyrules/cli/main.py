"""The `povertyrules` command: score spreadsheets, check rule files, make synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from povertyrules.cli import access, audit, datasets, inspect, monitor, notebook, procedure, rules, store
from povertyrules.cli.common import (
    MaskingConsole,
    ProvinceOption,
    fail_on_errors,
    lang_choice,
    parse_sets,
    refuse_overwriting,
    summary_table,
)
from povertyrules.decisions.files import DecisionWriter, side_file, side_sheet
from povertyrules.errors import PovertyRulesError
from povertyrules.io.tables import write_table

app = typer.Typer(help="Rules-as-code for targeted poverty alleviation: identification, exit, monitoring.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(rules.app, name="rules")
app.add_typer(datasets.app, name="datasets")
app.add_typer(procedure.app, name="procedure")
app.add_typer(notebook.app, name="notebook")
app.add_typer(store.app, name="store")
app.add_typer(access.users, name="users")
app.command("access-log")(access.access_log)
app.command(name="inspect")(inspect.inspect_file)
for command in (audit.explain, audit.history, audit.diff, audit.watchlist, audit.runs, audit.review,
                monitor.monitor, monitor.alerts, monitor.confirm):
    app.command()(command)
app.command(name="核查", help="核查：记录与规则对比（同 review）。")(audit.review)
console = MaskingConsole(stderr=True)


@app.callback()
def main(show_identities: Annotated[bool, typer.Option(
        "--show-identities", help="Show identity-card and phone numbers unmasked in every output of this "
                                  "command (files, printed text, JSON). Masked by default.")] = False) -> None:
    """Rules-as-code for targeted poverty alleviation: identification, exit, monitoring."""
    from povertyrules.privacy import reveal

    reveal(show_identities)

PROGRESS_FROM = 100_000  # rows; smaller inputs finish before a bar would help
SIDE_FILES = ("errors", "skipped", "checks", "evidence", "contradictions", "unmatched")  # written beside OUT


@app.command()
@fail_on_errors
def score(
    input: Annotated[Path, typer.Argument(help="A county file as it is: national export, roster, monitoring "
                                            "export or the contract layout (.xlsx/.xls/.ods/.csv/.parquet).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Decisions file: .csv, .xlsx or .parquet.")],
    members: Annotated[Path | None, typer.Option(help="Members file (ID-1); default: a 'members' sheet.")] = None,
    year: Annotated[int | None, typer.Option(help="Evaluation year for rows without 年度/year.")] = None,
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Rules folder (default: shipped).")] = None,
    override: Annotated[list[Path] | None, typer.Option(help="County override file or folder (repeatable).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="What-if: PARAMETER=VALUE (repeatable).")] = None,
    province: ProvinceOption = None,
    layout: Annotated[str | None, typer.Option(help="Force a layout: a name in rules/layouts, or a file.")] = None,
    join: Annotated[list[Path] | None, typer.Option(help="Side sheet to join by 户编号 or ID number (repeatable), "
                                                    "e.g. a 四看法 sheet onto a roster.")] = None,
    register: Annotated[list[Path] | None, typer.Option(help="Department register to match by members' ID "
                                                        "numbers (MON-5.1), e.g. vehicles (repeatable).")] = None,
    lang: Annotated[str, typer.Option(help="zh: Chinese headers, values and reasons; en: the contract's names and "
                                           "codes.", callback=lang_choice)] = "zh",
    reasons: Annotated[str, typer.Option(help="main: one line per household; full: every cited rule (xlsx: a "
                                              "second sheet, one row per household and rule).")] = "main",
    store: Annotated[bool, typer.Option(help="Record the run in the audit store and print its id.")] = False,
    db: audit.DbOption = None,
    operator: Annotated[str | None, typer.Option(help="Who ran it (default: the login name).")] = None,
    dask: Annotated[bool, typer.Option(help="Score the files INPUT names ('dir/*.parquet') on Dask, one task per "
                                            "file; OUT becomes a folder of Parquet parts.")] = False,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (implies --dask; default: a "
                                                       "LocalCluster on this machine).")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster workers (default: one per core).")] = None,
) -> None:
    """Score every household and write decisions with cited reasons; unreadable rows go to an errors file,
    lines that are not households (titles, 合计, signatures) to a skipped file."""
    if dask or scheduler:
        from povertyrules.cli.cluster import score_on_dask

        if layout or join:
            raise PovertyRulesError("--layout/--join are not supported with --dask: partitions are contract tables")
        return score_on_dask(input, output, members, year, rules_dir, override, parse_sets(set_), lang, store, db,
                             operator, scheduler, workers)
    from povertyrules.layouts.prepare import prepare
    from povertyrules.scoring import resolve_rules
    from povertyrules.scoring import score as run_score

    refuse_overwriting([input, members, *(join or []), *(register or [])],
                       [output, *(output.with_name(f"{output.stem}.{side}{output.suffix}") for side in SIDE_FILES)])

    book = resolve_rules(rules_dir, parse_sets(set_), override, province)
    # (Arrow text as read, unless registers are matched onto the cells first)
    prepared = _prepare(prepare, input, book, layout, join, members, not register)
    if year is None and len(prepared.frame) and _blank(prepared.frame.get("year")):
        from povertyrules.errors import InputError

        raise InputError("表中没有“年度”列或年度全部为空：请用 --year 指定评估年度（例如 --year 2020）",
                         "the file has no year, or every year is blank: give the evaluation year with --year "
                         "(e.g. --year 2020)", file=str(input), column="year")
    registered = None
    if register:
        from povertyrules.cli.registers import attach

        registered = attach(prepared, register, book, year)
        prepared.errors = pd.concat([prepared.errors, registered.errors], ignore_index=True)
    console.print(f"layout: {prepared.layout.name} — {prepared.layout.description.zh} / "
                  f"{prepared.layout.description.en}; header line(s) {prepared.table.header_rows}", highlight=False)
    members_file = str(members) if members else f"{input}#members"
    from povertyrules.layouts.coverage import present_columns

    present, households = present_columns(prepared.frame, book), len(prepared.frame)
    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=households < PROGRESS_FROM) as bar, \
            DecisionWriter(output, book, lang, background=not store) as writer:
        task = bar.add_task("score", total=households)
        # the text cells are handed over, not kept: `score` frees them once typed (one copy of the input in memory)
        result = run_score(prepared.release_frame(), year=year, rules=book, members=prepared.members, lang=lang,
                           file=str(input), members_file=members_file, progress=lambda k: bar.advance(task, k),
                           keep_records=store, rows=prepared.rows, reasons=reasons, release_input=True,
                           sink=None if store else (lambda part, records: writer.write(_evidence(part, registered),
                                                                                       records)),
                           sink_records=reasons == "full" and writer.xlsx)
        if store:  # the store needs every decision in memory anyway
            writer.write(_evidence(result.decisions, registered), result.records if reasons == "full" else None)
    score_errors = result.errors
    result.errors = pd.concat([e for e in (prepared.errors, result.errors) if len(e)], ignore_index=True) \
        if len(prepared.errors) else result.errors
    errors_path = output.with_name(f"{output.stem}.errors{output.suffix}")
    write_table(side_file(result.errors, "errors", lang), errors_path, sheet=side_sheet("errors", lang))
    extra = {}
    for name, table in (("skipped", prepared.skipped), ("checks", prepared.checks)):
        if len(table):
            extra[name] = write_table(side_file(table, name, lang),
                                      output.with_name(f"{output.stem}.{name}{output.suffix}"),
                                      sheet=side_sheet(name, lang))
    if registered is not None:
        from povertyrules.cli.registers import report

        extra.update(report(registered, output, console, lang))
        result.evidence, result.contradictions = registered.evidence, registered.contradictions
    _print_summary(result, prepared, present, score_errors, output, errors_path, extra, book, lang)
    if store:
        from sqlmodel import Session

        from povertyrules.store.database import connect
        from povertyrules.store.integrity import RunDigest
        from povertyrules.store.runs import record_run

        engine = connect(db)
        reading = {"layout": prepared.layout.name, "layout_file": prepared.layout.file,
                   "header_rows": prepared.table.header_rows, "blank_as_zero": prepared.blank_as_zero,
                   "skipped": len(prepared.skipped), "joined": prepared.joined}
        run_id = record_run(engine, result, input, operator, lang, reading=reading)
        with Session(engine) as session:
            sealed = session.get(RunDigest, run_id)
        digest = sealed.digest if sealed else "—"
        console.print(f"已存入审计库：第 {run_id} 次运行；链摘要 {digest}\n"
                      f"stored as run {run_id}; chain digest {digest}", highlight=False)
        print(run_id)


def _evidence(decisions: pd.DataFrame, registered) -> pd.DataFrame:
    if registered is None:
        return decisions
    from povertyrules.cli.registers import with_evidence

    return with_evidence(decisions, registered)


@app.command()
@fail_on_errors
def serve(
    db: audit.DbOption = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    show_identities: Annotated[bool, typer.Option(help="Show identity-card and phone numbers unmasked.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Server processes (one per core serves the most "
                                                             "readers at once).")] = 1,
) -> None:
    """Serve the read-only inspector pages and JSON API over the audit store. Beyond loopback every request
    needs a user of the store (`povertyrules users add`); every read is logged (`povertyrules access-log`)."""
    import uvicorn

    from povertyrules.errors import PovertyRulesError
    from povertyrules.privacy import revealing
    from povertyrules.store.access import has_users
    from povertyrules.store.database import connect
    from povertyrules.web.app import create_app, is_loopback

    show_identities = show_identities or revealing()
    require_login = not is_loopback(host)
    if require_login and not has_users(connect(db, must_exist=True)):
        raise PovertyRulesError(f"serving on {host} (beyond this machine) needs users: add one with `povertyrules "
                                "users add NAME` / 对外提供服务须先添加用户")
    app = create_app(db, show_identities, require_login)  # (also checks the store before anything listens)
    shown = f"[{host}]" if ":" in host else host
    print(f"povertyrules 查询页面 / inspector pages: http://{shown}:{port}/", flush=True)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    import json
    import os

    from povertyrules.web.app import SERVED

    os.environ[SERVED] = json.dumps({"db": db, "show_identities": show_identities, "require_login": require_login})
    uvicorn.run("povertyrules.web.app:served_app", factory=True, workers=workers, host=host, port=port,
                log_level="warning")


def _blank(column: pd.Series | None) -> bool:
    """No value at all in `column` (absent, or every cell blank)."""
    return column is None or not column.astype("string").str.strip().fillna("").str.len().gt(0).any()


def _prepare(prepare, input: Path, *args):
    """The prepared input; a file that cannot be decoded or parsed is a clean error, not a traceback."""
    import pyarrow as pa

    from povertyrules.errors import InputError

    try:
        return prepare(input, *args)
    except UnicodeDecodeError as exc:
        raise InputError(f"文件编码无法识别（第 {exc.start} 字节）：请另存为 UTF-8",
                         f"the file is not in a readable encoding (byte {exc.start}); save it as UTF-8",
                         file=str(input)) from None
    except pa.ArrowInvalid as exc:
        raise InputError("文件无法读取", f"the file cannot be read: {str(exc)[:200]}", file=str(input)) from None


def _print_summary(result, prepared, present: set[str], score_errors, output: Path, errors_path: Path,
                   extra: dict[str, Path], book, lang: str = "zh") -> None:
    from povertyrules.layouts.coverage import notices
    from povertyrules.layouts.prepare import account

    console.print(summary_table(result, book, lang))
    for zh, en in notices(book, present, result.decisions):
        console.print(f"注意：{zh}\nnote: {en}", highlight=False, markup=False)
    if prepared.blank_as_zero:
        console.print(f"空白按0计（格式声明）/ blanks read as 0 (declared by the layout): "
                      f"{', '.join(prepared.blank_as_zero)}", highlight=False, markup=False)
    for side in prepared.joined:
        console.print(f"并表 / joined {side['file']} ({side['layout']}): lines {side['lines']} = matched "
                      f"{side['matched']} + skipped {side['skipped']} + with errors {side['error_lines']}",
                      highlight=False, markup=False)
    counts = account(prepared, result.decisions, score_errors)
    console.print(f"输入行 {counts['lines']} = 已判定 {counts['decided_lines']}（{counts['households']} 户）"
                  f" + 跳过 {counts['skipped']} + 有错误 {counts['error_lines']}\n"
                  f"input lines {counts['lines']} = decided {counts['decided_lines']} "
                  f"({counts['households']} households) + skipped {counts['skipped']} + with errors "
                  f"{counts['error_lines']}", highlight=False, markup=False)
    console.print(f"decisions: {output}\nerrors:    {errors_path} ({len(result.errors)} error lines)",
                  highlight=False, markup=False)
    for name, path in extra.items():
        console.print(f"{name}: {path}", highlight=False, markup=False)
    if counts["lines"] != counts["decided_lines"] + counts["skipped"] + counts["error_lines"]:  # an invariant
        console.print("[red]行数不平 / the line counts do not add up[/red]")
        raise typer.Exit(3)


if __name__ == "__main__":  # pragma: no cover
    app()
