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
LangOption = Annotated[str, typer.Option(help="zh (default): Chinese headers and labels; en: English names and codes.")]


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
    from povertyrules.store.changes import decision_name, missing_names, readable_changes
    from povertyrules.store.explain import snapshot_rulebook
    from povertyrules.store.procedures import source_label
    from povertyrules.store.readable import clause_texts, readable_reasons, value_text

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
    def amount(value, unit: str = "") -> str:  # a blank reads 未填 / blank, with no unit after it
        return value_text(value, lang) + (f" {unit}" if unit and value is not None else "")

    console.print(f"{'人均纯收入' if zh else 'per-capita income'} {amount(d.per_capita_income, money)} · "
                  f"{'标准线' if zh else 'line'} {amount(d.poverty_line, money)} · "
                  f"{'监测线' if zh else 'monitoring line'} {amount(d.monitoring_line, money)} · "
                  f"{'四看法评分' if zh else '四看法 score'} {amount(d.four_look_score)}", highlight=False)
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
            else f"procedure in progress (next step: {state['next_label']['en']}): the status is not final")
        console.print(f"{state['name']['zh']}（{state['clause']}）：{final}" if zh else
                      f"{state['name']['en']} ({state['clause']}): {final}", highlight=False)
        for step in state["steps"]:
            objection = ("（有异议）" if zh else " (objection)") if step["objection"] else ""
            note = f"（{source_label(book, name, step['note'], lang)}）" if step["note"] else ""
            console.print(f"  ✓ {step['date']} {step['label']['zh' if zh else 'en']} — {step['actor']}{objection}"
                          f"{note}", highlight=False, markup=False)


def _procedures(engine, decision) -> dict[str, dict]:
    """The procedure each decision's outcome needs before it is final (ID-4, EX-2, MON-3), and its state,
    by the procedure steps of the rules the decision's run was scored with."""
    from povertyrules.store.procedures import procedures_of
    from povertyrules.store.rulebooks import rulebook_for

    book, _ = rulebook_for(engine, run_id=decision.run_id)
    return procedures_of(engine, book, decision)


@fail_on_errors
def history(household_id: Annotated[str, typer.Argument(help="户编号 / household id")],
            lang: LangOption = "zh", db: DbOption = None) -> None:
    """How a household's decisions changed across runs and years."""
    from povertyrules.store.changes import decision_name
    from povertyrules.store.explain import snapshot_rulebook
    from povertyrules.store.runs import get_run, history_of

    engine = _engine(db, household_id)
    rows = history_of(engine, household_id)
    if not rows:
        _not_found(LookupError(f"户 {household_id} 不在审计库中 / household {household_id} is not in the store"))
    zh = lang == "zh"
    decisions = ("identification", "exit", "monitoring")
    table = Table(*(("运行", "时间", "年度", "规则版本", "人均纯收入", *(decision_name(d, "zh") for d in decisions),
                     "监测风险", "变化") if zh else
                    ("run", "time", "year", "rules_version", "per-capita", *decisions, "triggers", "changed")))
    previous = None
    for run, d in rows:
        now = (d.identification, d.exit, d.monitoring)
        changed = "" if previous is None or previous == now else "◀"
        if zh:
            book = snapshot_rulebook(get_run(engine, run.id))  # (the listed run carries no snapshot)
            triggers = {t: r.description.zh for t, r in book.triggers().items()}
            table.add_row(str(run.id), f"{run.created_at:%Y-%m-%d %H:%M}", str(d.year), run.rules_version,
                          _amount(d.per_capita_income, "zh"),
                          *(book.decisions[x].label(getattr(d, x) or "", "zh") for x in decisions),
                          "；".join(triggers.get(t, t) for t in (d.monitoring_triggers or "").split(";") if t),
                          changed)
        else:
            table.add_row(str(run.id), f"{run.created_at:%Y-%m-%d %H:%M}", str(d.year), run.rules_version,
                          str(d.per_capita_income), d.identification, d.exit or "—", d.monitoring,
                          d.monitoring_triggers or "", changed)
        previous = now
    console.print(table)


def _amount(value, lang: str) -> str:
    from povertyrules.store.readable import value_text

    return value_text(value, lang)


@fail_on_errors
def diff(
    run_a: Annotated[int, typer.Argument()],
    run_b: Annotated[int, typer.Argument()],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the differences to a file.")] = None,
    lang: LangOption = "zh",
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
    if lang == "zh":
        changes = _diff_in_words(_engine(db), changes, run_a, run_b)
    table = Table(*changes.columns)
    for row in changes.head(200).itertuples(index=False):
        table.add_row(*("" if v is None or v != v else escape(str(v)) for v in row))
    console.print(table)
    console.print(f"{len(changes)} 项判定有变化" if lang == "zh" else f"{len(changes)} changed decisions",
                  highlight=False)
    if output:
        write_table(changes, output)


def _diff_in_words(engine, changes, run_a: int, run_b: int):
    """The differences between two runs as a Chinese reader reads them: decisions, outcomes and rules by their
    labels from each run's rule files, verdicts in words."""
    from povertyrules.store.changes import decision_name, vocabulary
    from povertyrules.store.explain import snapshot_rulebook
    from povertyrules.store.runs import get_run

    books = {k: snapshot_rulebook(get_run(engine, r)) for k, r in (("a", run_a), ("b", run_b))}
    verdicts = vocabulary()["words"]["zh"]["verdicts"]

    def outcome(decision: str, value, side: str) -> str:
        book = books[side]
        if not isinstance(value, str):
            return "（无）"
        return book.decisions[decision].label(value, "zh") if decision in book.decisions else value

    def rule(name, side: str) -> str:
        if not isinstance(name, str) or not name:
            return ""
        found = books[side].rules.get(name)
        return found.description.zh if found else name

    def conditions(text) -> str:
        out = []
        for part in (text or "").split(";"):
            name, _, change = part.partition(": ")
            if name:
                before, _, after = change.partition("→")
                out.append(f"{rule(name, 'b')}：{verdicts.get(before, before)}→{verdicts.get(after, after)}")
        return "；".join(out)

    import pandas as pd

    return pd.DataFrame({
        "户编号": changes["household_id"],
        "决定": [decision_name(d, "zh") for d in changes["decision"]],
        f"第 {run_a} 次运行": [outcome(d, v, "a") for d, v in zip(changes["decision"], changes["run_a"], strict=True)],
        f"第 {run_b} 次运行": [outcome(d, v, "b") for d, v in zip(changes["decision"], changes["run_b"], strict=True)],
        f"第 {run_a} 次的决定规则": [rule(v, "a") for v in changes["decisive_rule_a"]],
        f"第 {run_b} 次的决定规则": [rule(v, "b") for v in changes["decisive_rule_b"]],
        "变化的条件": [conditions(v) for v in changes["changed_conditions"]],
    })


@fail_on_errors
def watchlist(
    output: Annotated[Path, typer.Option("--output", "-o", help="Watchlist workbook (.xlsx).")],
    run: Annotated[int | None, typer.Option(help="Run id (default: the latest).")] = None,
    county: Annotated[str | None, typer.Option(help="Only this county.")] = None,
    township: Annotated[str | None, typer.Option(help="Only this township.")] = None,
    deep_poverty: Annotated[list[str] | None, typer.Option(help="A deep-poverty county (10% cap; repeatable).")] = None,
    lang: LangOption = "zh",
    db: DbOption = None,
) -> None:
    """Monitored households (MON-1/MON-2) by risk, with suggested assistance and the MON-2 scale check."""
    from povertyrules.decisions.files import labels
    from povertyrules.io.tables import write_table
    from povertyrules.store.reports import watchlist as build
    from povertyrules.store.reports import watchlist_sheets
    from povertyrules.store.review import percent

    _keep_store(db, output)
    engine = _engine(db)
    households, scale = build(engine, run, county, township, tuple(deep_poverty or ()))
    first, *rest = watchlist_sheets(engine, households, scale, run, lang).items()
    write_table(first[1], output, sheet=first[0], sheets=dict(rest))
    zh = lang == "zh"
    checks = labels()["watchlist"]["checks"]
    console.print(f"{len(households)} 户监测对象 → {escape(str(output))}" if zh else
                  f"{len(households)} monitored households → {escape(str(output))}", highlight=False)
    for row in scale.itertuples(index=False):
        style = "red" if row.check.startswith("WARNING") else "green"
        limit = percent(row.limit) if row.limit == row.limit else ("无规定" if zh else "none in force")
        check = checks.get(row.check, row.check) if zh else row.check
        console.print(f"[{style}]{escape(str(row.county))}: 监测 {row.monitored_people:.0f} 人 / 建档立卡 "
                      f"{row.registered_people:.0f} 人 = {percent(row.share)}（上限 {limit}）— "
                      f"{escape(check)}[/{style}]"
                      if zh else
                      f"[{style}]{escape(str(row.county))}: {row.monitored_people:.0f} monitored / "
                      f"{row.registered_people:.0f} "
                      f"registered people = {percent(row.share)} (limit {limit}) — {escape(check)}[/{style}]",
                      highlight=False)


@fail_on_errors
def runs(lang: LangOption = "zh", db: DbOption = None) -> None:
    """The stored runs."""
    from povertyrules.store.runs import runs as all_runs

    table = Table(*(("运行", "时间", "操作人", "输入文件", "年度", "规则版本", "已判定户数", "错误行数") if lang == "zh"
                    else ("run", "time", "operator", "input", "year", "rules_version", "decided", "errors")))
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
    which = (f"第 {result.run.id} 次运行（{escape(result.run.input_file)}）" if lang == "zh"
             else f"run {result.run.id} ({escape(result.run.input_file)})")
    console.print(f"[bold]{result.labels[lang]['title']}[/bold] — {which}", highlight=False)
    for line in result.lines(lang):
        console.print(f"  {line}", highlight=False, markup=False)
    places = result.by_place("township", lang)
    table = Table(*(str(c) for c in places.columns))
    for row in places.itertuples(index=False):
        table.add_row(*(percent(v) if v is None or isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if output:
        template = (link.rstrip("/") + "/decision/{decision_id}" if link
                    else "povertyrules explain {household_id} --run {run_id}")
        sheets = result.sheets(lang, template)
        first, *rest = sheets.items()
        write_table(first[1], output, sheet=first[0], sheets=dict(rest))
        console.print(f"→ {output}", highlight=False)

