"""Audit commands: explain a stored decision, a household's history, the difference between runs, watchlists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from povertyrules.cli.common import MaskingConsole, fail_on_errors, lang_choice

console = MaskingConsole()
DbOption = Annotated[str | None, typer.Option("--db", help="SQLite file or postgresql:// URL "
                                                           "(default: $POVERTYRULES_DB or ./povertyrules.db).")]


def _engine(db: str | None, household_id: str | None = None, must_exist: bool = True):
    """The store; a read-only command never creates a database that does not exist (it says so instead), and
    warns when the store fails its integrity check."""
    from povertyrules.cli.store import warn_if_tampered
    from povertyrules.store.database import MissingStore, connect

    try:
        engine = connect(db, must_exist=must_exist)
    except MissingStore as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        raise typer.Exit(1) from None
    warn_if_tampered(engine, household_id)
    return engine


def _keep_store(db: str | None, output: Path | None) -> None:
    """Refuse an output file that would replace the SQLite store (or its journal or key) it is read from."""
    from povertyrules.cli.common import refuse_overwriting
    from povertyrules.store.database import database_url

    url = database_url(db)
    if output is not None and url.startswith("sqlite:///"):
        store = Path(url.removeprefix("sqlite:///"))
        refuse_overwriting([store, *(store.with_name(store.name + end) for end in ("-wal", "-shm", ".key"))],
                           [output])


def _not_found(exc: LookupError) -> None:
    console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
    raise typer.Exit(1)


@fail_on_errors
def explain(
    household_id: Annotated[str, typer.Argument(help="户编号 / household id")],
    run: Annotated[int | None, typer.Option(help="Run id (default: the latest run with this household).")] = None,
    lang: Annotated[str, typer.Option(help="zh or en.", callback=lang_choice)] = "zh",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Why was this household decided so? The stored reasons, clause texts, and what would change it."""
    from povertyrules.store.explain import explain_decisions
    from povertyrules.store.runs import NotFound, contradictions_of, decision_of, evidence_of, get_run

    engine = _engine(db, household_id)
    try:
        decision = decision_of(engine, household_id, run)
    except NotFound as exc:
        _not_found(exc)
    stored_run = get_run(engine, decision.run_id)
    explanation = explain_decisions(stored_run, [decision])[decision.household_id]
    procedures = _procedures(engine, decision)
    evidence = [e.model_dump(exclude={"id", "run_id"}) for e in evidence_of(engine, household_id, decision.run_id)]
    contradictions = [c.model_dump(exclude={"id", "run_id"})
                      for c in contradictions_of(engine, decision.run_id, household_id)]
    if as_json:
        from povertyrules.privacy import protect

        print(json.dumps(protect({**explanation.to_dict(), "procedures": procedures, "evidence": evidence,
                                  "contradictions": contradictions}), ensure_ascii=False, indent=2, default=str))
        return
    zh = lang == "zh"
    lang = "zh" if zh else "en"
    d = explanation.decision
    from povertyrules.store.changes import decision_name, missing_names, number, readable_changes
    from povertyrules.store.explain import snapshot_rulebook
    from povertyrules.store.readable import clause_texts, readable_reasons

    book = snapshot_rulebook(stored_run)
    when = f"{stored_run.created_at:%Y-%m-%d %H:%M}"
    head = (f"[bold]户 {escape(d.household_id)}[/bold] — 第 {stored_run.id} 次运行（{when}，"
            f"{escape(stored_run.input_file)}），规则版本 {stored_run.rules_version}") if zh else (
            f"[bold]household {escape(d.household_id)}[/bold] — run {stored_run.id} ({when}, "
            f"{escape(stored_run.input_file)}), rules version {stored_run.rules_version}")
    console.print(head, highlight=False)
    statuses = ("，" if zh else "; ").join(
        f"{decision_name(x, lang)}{'：' if zh else ': '}{book.decisions[x].label(getattr(d, x) or '', lang)}"
        for x in ("identification", "exit", "monitoring"))
    console.print(f"{'年度' if zh else 'year'} {d.year}{'：' if zh else ': '}{statuses}", highlight=False)
    money = "元" if zh else "yuan"
    console.print(f"{'人均纯收入' if zh else 'per-capita income'} {number(d.per_capita_income)} {money} · "
                  f"{'标准线' if zh else 'line'} {number(d.poverty_line)} {money} · "
                  f"{'监测线' if zh else 'monitoring line'} {number(d.monitoring_line)} {money} · "
                  f"{'四看法评分' if zh else '四看法 score'} {number(d.four_look_score)}", highlight=False)
    if d.missing_columns:
        console.print(f"{'待补充数据：' if zh else 'missing: '}{escape(missing_names(book, d.missing_columns, lang))}",
                      highlight=False)
    console.print(f"\n[bold]{'改变结果的条件' if zh else 'What would change the outcome'}[/bold]")
    as_dict = explanation.to_dict()
    for line in readable_changes(book, as_dict, lang):
        console.print(f"  {line['text']}", highlight=False, markup=False)
    decisive = "【决定本项结果】" if zh else "[decides this outcome] "
    for section in readable_reasons(book, d.trace or "", json.loads(stored_run.trace_rules), as_dict["decision"],
                                    as_dict["reasons"], lang):
        console.print(f"\n[bold]{escape(section['name'])}{'：' if zh else ': '}{escape(section['outcome'])}[/bold]",
                      highlight=False)
        for r in section["reasons"]:
            console.print(f"  {r['mark']} {decisive if r['decisive'] else ''}{r['text']}（{r['clause']}）" if zh else
                          f"  {r['mark']} {decisive if r['decisive'] else ''}{r['text']} ({r['clause']})",
                          highlight=False, markup=False)
    if evidence:
        cited = "、".join(dict.fromkeys(e["clause"] for e in evidence if e["clause"]))
        console.print(f"\n[bold]{'部门数据依据' if zh else 'Register evidence'}{escape(f' ({cited})') if cited else ''}"
                      "[/bold]", highlight=False)
        for e in evidence:
            console.print(f"  {missing_names(book, e['column'], lang)}: {e['text']} ({e['file']}:{e['row']})",
                          highlight=False, markup=False)
    for c in contradictions:
        console.print(f"  {'与户表不一致' if zh else 'contradicts the household file'}: "
                      f"{missing_names(book, c['column'], lang)} "
                      f"{'户表' if zh else 'file'} {c['file_value']} / {'部门数据' if zh else 'register'} "
                      f"{c['register_value']} — {c['evidence']}", highlight=False, markup=False)
    console.print(f"\n[bold]{'条款原文' if zh else 'Clause texts'}[/bold]")
    for clause, text in clause_texts(explanation.clauses, lang).items():
        console.print(escape(f"  [{clause}] {text}"), highlight=False)
    for name, state in procedures.items():
        final = ("程序完成，结果生效" if zh else "procedure complete: the status is final") if state["complete"] else (
            f"程序未完成（下一步：{state['next_label']['zh']}），结果尚未生效" if zh
            else f"procedure in progress (next step: {state['next_step']}): the status is not final")
        console.print(f"{decision_name(name, lang)}（{state['clause']}）：{final}" if zh else
                      f"{name} ({state['clause']}): {final}", highlight=False)
        for step in state["steps"]:
            objection = ("（有异议）" if zh else " (objection)") if step["objection"] else ""
            console.print(f"  ✓ {step['date']} {step['label']['zh' if zh else 'en']} — {step['actor']}{objection}",
                          highlight=False, markup=False)


def _procedures(engine, decision) -> dict[str, dict]:
    """The procedure each decision's outcome needs before it is final (ID-4, EX-2, MON-3), and its state,
    by the procedure steps of the rules the decision's run was scored with."""
    from povertyrules.store.procedures import procedures_of
    from povertyrules.store.rulebooks import rulebook_for

    book, _ = rulebook_for(engine, run_id=decision.run_id)
    return procedures_of(engine, book, decision)


@fail_on_errors
def history(household_id: Annotated[str, typer.Argument(help="户编号 / household id")], db: DbOption = None) -> None:
    """How a household's decisions changed across runs and years."""
    from povertyrules.store.runs import history_of

    rows = history_of(_engine(db, household_id), household_id)
    if not rows:
        _not_found(LookupError(f"户 {household_id} 不在审计库中 / household {household_id} is not in the store"))
    table = Table("run", "time", "year", "rules_version", "per-capita", "identification", "exit", "monitoring",
                  "triggers", "changed")
    previous = None
    for run, d in rows:
        now = (d.identification, d.exit, d.monitoring)
        changed = "" if previous is None or previous == now else "◀"
        table.add_row(str(run.id), f"{run.created_at:%Y-%m-%d %H:%M}", str(d.year), run.rules_version,
                      str(d.per_capita_income), d.identification, d.exit or "—", d.monitoring,
                      d.monitoring_triggers or "", changed)
        previous = now
    console.print(table)


@fail_on_errors
def diff(
    run_a: Annotated[int, typer.Argument()],
    run_b: Annotated[int, typer.Argument()],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the differences to a file.")] = None,
    db: DbOption = None,
) -> None:
    """Households whose status changed between two runs, with the rule that made the difference."""
    from povertyrules.io.tables import write_table
    from povertyrules.store.reports import diff_runs
    from povertyrules.store.runs import NotFound

    try:
        _keep_store(db, output)
        changes = diff_runs(_engine(db), run_a, run_b)
    except NotFound as exc:
        _not_found(exc)
    table = Table(*changes.columns)
    for row in changes.head(200).itertuples(index=False):
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    console.print(table)
    console.print(f"{len(changes)} changed decisions", highlight=False)
    if output:
        write_table(changes, output)


@fail_on_errors
def watchlist(
    output: Annotated[Path, typer.Option("--output", "-o", help="Watchlist workbook (.xlsx).")],
    run: Annotated[int | None, typer.Option(help="Run id (default: the latest).")] = None,
    county: Annotated[str | None, typer.Option(help="Only this county.")] = None,
    township: Annotated[str | None, typer.Option(help="Only this township.")] = None,
    deep_poverty: Annotated[list[str] | None, typer.Option(help="A deep-poverty county (10% cap; repeatable).")] = None,
    db: DbOption = None,
) -> None:
    """Monitored households (MON-1/MON-2) by risk, with suggested assistance and the MON-2 scale check."""
    from povertyrules.io.tables import write_table
    from povertyrules.store.reports import watchlist as build

    _keep_store(db, output)
    households, scale = build(_engine(db), run, county, township, tuple(deep_poverty or ()))
    write_table(households, output, sheet="watchlist", sheets={"scale": scale})
    console.print(f"{len(households)} monitored households → {escape(str(output))}", highlight=False)
    for row in scale.itertuples(index=False):
        style = "red" if row.check.startswith("WARNING") else "green"
        console.print(f"[{style}]{escape(str(row.county))}: {row.monitored_people:.0f} monitored / "
                      f"{row.registered_people:.0f} "
                      f"registered people = {row.share:.1%} (limit {row.limit:.0%}) — {row.check}[/{style}]",
                      highlight=False)


@fail_on_errors
def runs(db: DbOption = None) -> None:
    """The stored runs."""
    from povertyrules.store.runs import runs as all_runs

    table = Table("run", "time", "operator", "input", "year", "rules_version", "decided", "errors")
    for r in all_runs(_engine(db)):
        table.add_row(str(r.id), f"{r.created_at:%Y-%m-%d %H:%M}", escape(r.operator), escape(r.input_file),
                      str(r.year or ""), r.rules_version, str(r.decided), str(r.error_rows))
    console.print(table)


@fail_on_errors
def review(
    run: Annotated[int | None, typer.Argument(help="Run id (default: the latest).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="核查 workbook (.xlsx) for the county.")] = None,
    checks: Annotated[Path | None, typer.Option(help="Checks file (default: rules/review/checks.yaml).")] = None,
    link: Annotated[str | None, typer.Option(help="Base address of `povertyrules serve` (e.g. "
                                                  "http://127.0.0.1:8000): each household links to its page.")] = None,
    lang: Annotated[str, typer.Option(help="zh or en.", callback=lang_choice)] = "zh",
    db: DbOption = None,
) -> None:
    """核查: where the county's records disagree with the rules — 疑似错评, 漏评, 错退, 漏监测, risk removals —
    counted per township and village, each household with its explanation."""
    from povertyrules.io.tables import write_table
    from povertyrules.store.review import percent
    from povertyrules.store.review import review as build
    from povertyrules.store.runs import NotFound

    try:
        _keep_store(db, output)
        result = build(_engine(db), run, checks)
    except NotFound as exc:
        _not_found(exc)
    lang = "en" if lang == "en" else "zh"
    console.print(f"[bold]{result.labels[lang]['title']}[/bold] — run {result.run.id} ({result.run.input_file})",
                  highlight=False)
    for line in result.lines(lang):
        console.print(f"  {line}", highlight=False, markup=False)
    places = result.by_place("township", lang)
    table = Table(*(str(c) for c in places.columns))
    for row in places.itertuples(index=False):
        table.add_row(*(percent(v) if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if output:
        template = (link.rstrip("/") + "/decision/{decision_id}" if link
                    else "povertyrules explain {household_id} --run {run_id}")
        sheets = result.sheets(lang, template)
        first, *rest = sheets.items()
        write_table(first[1], output, sheet=first[0], sheets=dict(rest))
        console.print(f"→ {output}", highlight=False)

