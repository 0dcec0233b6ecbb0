"""`povertyrules procedure …`: record and show identification, exit, monitoring and risk-removal procedure steps."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from povertyrules.cli.audit import DbOption, LangOption
from povertyrules.cli.common import MaskingConsole, OverrideOption, RulesOption, SetOption, fail_on_errors, parse_sets

app = typer.Typer(help="Procedure records (ID-4, EX-2, MON-3, M21-6).", no_args_is_help=True)
console = MaskingConsole()
Procedure = Annotated[str, typer.Option(help="identification, exit, monitoring or risk_removal "
                                             "(rules/procedures/steps.yaml).")]


@app.command()
@fail_on_errors
def record(
    household_id: Annotated[str, typer.Argument()],
    step: Annotated[str, typer.Option(help="The step's id (see `procedure show`).")],
    actor: Annotated[str, typer.Option(help="Who did it.")],
    procedure: Procedure = "identification",
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
    objection: Annotated[bool, typer.Option(help="An objection was raised during this publicity step.")] = False,
    note: Annotated[str | None, typer.Option(help="A note (for monitoring's source step: the source, e.g. "
                                                 "乡村干部走访排查 or cadre_visit).")] = None,
    rules_dir: RulesOption = None, override: OverrideOption = None, set_: SetOption = None,
    lang: LangOption = "zh", db: DbOption = None,
) -> None:
    """Record the next step of a household's procedure; steps out of order are refused. The steps are those
    of the rules the household's latest run was scored with (or of the rules given)."""
    from povertyrules.store.database import connect
    from povertyrules.store.procedures import record_step
    from povertyrules.store.rulebooks import rulebook_for

    when = dt.date.fromisoformat(date) if date else dt.date.today()
    engine = connect(db)
    book, _ = rulebook_for(engine, rules_dir, override, parse_sets(set_), household_id=household_id)
    state = record_step(engine, book, household_id, procedure, step, when, actor, objection, note)
    spec = book.procedures[procedure]
    named = {s["id"]: s for s in spec["steps"]}
    title = (spec.get("name") or {}).get("zh", procedure)
    if lang == "zh":
        console.print(f"已记录户 {escape(household_id)} {title}的“{named[step]['zh']}”；"
                      + ("程序完成，结果生效" if state.complete else f"下一步：{named[state.next_step]['zh']}"),
                      highlight=False)
    else:
        console.print(f"recorded {procedure}/{escape(step)} for {escape(household_id)}; "
                      + ("procedure complete" if state.complete else f"next step: {state.next_step}"),
                      highlight=False)


@app.command()
@fail_on_errors
def show(household_id: Annotated[str, typer.Argument()], procedure: Procedure = "identification",
         rules_dir: RulesOption = None, override: OverrideOption = None, set_: SetOption = None,
         lang: LangOption = "zh", db: DbOption = None) -> None:
    """The recorded steps of a household's procedure, and the step due next."""
    from povertyrules.cli.store import warn_if_tampered
    from povertyrules.store.database import connect
    from povertyrules.store.procedures import state as procedure_state
    from povertyrules.store.rulebooks import rulebook_for

    engine = connect(db, must_exist=True)
    warn_if_tampered(engine)
    book, _ = rulebook_for(engine, rules_dir, override, parse_sets(set_), household_id=household_id)
    state = procedure_state(engine, book, household_id, procedure)
    from povertyrules.store.procedures import source_label

    spec = book.procedures[procedure]
    if lang == "zh":
        names = {s["id"]: s["zh"] for s in spec["steps"]}
        table = Table("日期", "步骤", "经办人", "异议", "备注",
                      title=f"{(spec.get('name') or {}).get('zh', procedure)}（{state.clause}）")
        for s in state.steps:
            table.add_row(str(s.date), names[s.step], escape(s.actor), "有异议" if s.objection else "",
                          escape(source_label(book, procedure, s.note, "zh")))
        console.print(table)
        console.print("程序完成，结果生效" if state.complete else
                      f"程序未完成：下一步 {names[state.next_step]}，结果尚未生效", highlight=False)
        return
    names = {s["id"]: f"{s['zh']} / {s['en']}" for s in spec["steps"]}
    table = Table("date", "step", "actor", "objection", "note", title=f"{procedure} ({state.clause})")
    for s in state.steps:
        table.add_row(str(s.date), names[s.step], escape(s.actor), "yes" if s.objection else "", escape(s.note or ""))
    console.print(table)
    console.print("complete: the status is final" if state.complete else
                  f"in progress: next step {state.next_step} ({names[state.next_step]}); the status is not final",
                  highlight=False)
