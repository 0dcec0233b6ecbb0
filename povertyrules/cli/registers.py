"""`score … --register FILE` and `monitor … --register FILE`: department registers brought onto the households."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from povertyrules.io.tables import write_table
from povertyrules.lang.rulebook import RuleBook
from povertyrules.registers.match import RegisterResult, apply_registers, read_register, unmatched_summary
from povertyrules.registers.spec import resolve_registers


def registers_folder(book: RuleBook) -> Path:
    return Path(book.root) / "registers"


def attach(prepared, paths: list[Path], book: RuleBook, year: int | None) -> RegisterResult:
    """Read each register, match it to the prepared households and put its facts onto their frame."""
    reads = [read_register(path, register) for path, register in resolve_registers(paths, registers_folder(book))]
    result = apply_registers(prepared.frame, prepared.ids, reads, book, year)
    prepared.frame = result.frame
    return result


def with_evidence(decisions: pd.DataFrame, result: RegisterResult | None) -> pd.DataFrame:
    """The decisions with an `evidence` column: the register records behind each household's facts."""
    if result is None:
        return decisions
    text = result.evidence_text()
    return decisions.assign(evidence=decisions["household_id"].astype(str).map(text).fillna(""))


ZH_HEADERS = {
    "evidence": {"household_id": "户编号", "column": "依据的字段", "clause": "条款", "register": "部门数据",
                 "kind": "类别", "date": "日期", "member": "成员证件号码（已隐去）", "text": "依据", "file": "文件",
                 "row": "原表行号"},
    "contradictions": {"household_id": "户编号", "column": "字段", "file_value": "户表值",
                       "register_value": "部门数据值", "evidence": "依据", "register_file": "部门数据文件"},
    "unmatched": {"row": "原表行号", "register": "部门数据", "kind": "类别", "date": "日期",
                  "member": "成员证件号码（已隐去）", "reason": "原因", "file": "文件"},
}


def report(result: RegisterResult, output: Path, console: Console, lang: str = "zh") -> dict[str, Path]:
    """Write the evidence, contradictions and unmatched records beside OUT (Chinese headers for `zh`); print
    each register's accounting."""
    written = {}
    for name, table in (("evidence", result.evidence), ("contradictions", result.contradictions),
                        ("unmatched", result.unmatched)):
        if len(table):
            shown = table.rename(columns=ZH_HEADERS[name]) if lang == "zh" else table
            written[name] = write_table(shown, output.with_name(f"{output.stem}.{name}{output.suffix}"))
    for a in result.accounts:
        console.print(f"部门数据 {a['title']}（{a['file']}）：{a['lines']} 行 = 对上户 {a['matched']}（其中作为依据 "
                      f"{a['used']}）+ 不在比对期内 {a['outside_window']} + 未对上任何户 {a['unmatched']} + 跳过 "
                      f"{a['skipped']} + 有错误 {a['error_lines']}\nregister {a['register']} ({a['file']}): "
                      f"{a['lines']} lines = matched {a['matched']} (used {a['used']}) + outside the window "
                      f"{a['outside_window']} + matching no household {a['unmatched']} + skipped {a['skipped']} "
                      f"+ with errors {a['error_lines']}", highlight=False, markup=False)
    for register, kind, count in unmatched_summary(result.unmatched):
        console.print(f"  未对上任何户 / matching no household: {register} {kind} {count}", highlight=False,
                      markup=False)
    if len(result.contradictions):
        console.print(f"部门数据与户表不一致 / register contradicts the household file: {len(result.contradictions)} "
                      f"处 → {written['contradictions']}", highlight=False, markup=False)
    return written


def monitor_registers(engine, book: RuleBook, watcher, state: dict, paths: list[Path], people: Path | None,
                      as_of: str | None, console: Console) -> dict:
    """Register records of the 12 months up to `as_of` as events into the monitor; alerts cite the evidence."""
    import datetime as dt

    import typer

    from povertyrules.errors import MissingParameters
    from povertyrules.layouts.prepare import prepare
    from povertyrules.monitor.alerts import store_alerts
    from povertyrules.monitor.stream import EventNotApplied
    from povertyrules.registers.events import register_events

    if people is None:
        raise typer.BadParameter("--register needs --people: the person-row file whose 证件号码 link the records")
    try:
        end = dt.date.fromisoformat(as_of) if as_of else dt.date.today()
    except ValueError:
        raise typer.BadParameter(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    ids = prepare(people, book).ids
    found = resolve_registers(paths, registers_folder(book))
    reads = [read_register(path, register) for path, register in found]
    events, counts = register_events(reads, ids, end)
    totals = {"events": 0, "unknown": 0, "alerts": 0, "not_applied": 0}
    by_file: dict[str, list] = {}
    for event in events:
        if event.household_id not in state:
            totals["unknown"] += 1
            continue
        totals["events"] += 1
        try:
            raised = watcher.process(event)
        except MissingParameters:  # keep the alerts raised so far, then stop with the message
            for file, proposals in by_file.items():
                store_alerts(engine, proposals, file)
            raise
        except EventNotApplied as exc:
            totals["not_applied"] += 1
            console.print(f"[yellow]{event.note}: cannot be applied: {exc} / 无法处理[/yellow]", highlight=False,
                          soft_wrap=True)
            continue
        for proposal in raised:
            proposal.message = f"{proposal.message}；依据 / evidence: {event.note}"
            by_file.setdefault(next(r.file for r in reads if r.register.event and r.register.event.kind ==
                                    event.kind), []).append(proposal)
    for file, proposals in by_file.items():
        totals["alerts"] += len(store_alerts(engine, proposals, file))
        for p in proposals[:20]:
            console.print(f"alert: {p.household_id} {p.trigger} ({','.join(p.clauses)}) — {p.event.note}",
                          highlight=False, soft_wrap=True)
    for read in reads:
        c = counts.get(read.file)
        if c is None:
            console.print(f"{read.file}: {read.register.title.zh} 不产生监测事件 / gives no monitoring events",
                          highlight=False)
            continue
        console.print(f"{read.file}: records {c['records']} (+{len(read.errors)} error lines) → events "
                      f"{c['events']}, outside the 12 months to {end} {c['outside_window']}, matching no household "
                      f"{c['unmatched']}", highlight=False, soft_wrap=True)
        for row in read.errors.itertuples(index=False):
            console.print(f"[yellow]{read.file} line {row.row}: {row.column} {row.value} — {row.error}[/yellow]",
                          highlight=False, soft_wrap=True)
    console.print(f"register events processed {totals['events']} (households not in the run: {totals['unknown']}; "
                  f"not applied: {totals['not_applied']});"
                  f" alerts raised {totals['alerts']}", highlight=False, soft_wrap=True)
    return totals
