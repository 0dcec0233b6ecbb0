"""`povertyrules inspect FILE`: a dry run that shows how a file will be read, before anything is scored."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from povertyrules.cli.common import MaskingConsole, fail_on_errors

console = MaskingConsole(soft_wrap=True)  # a file's cells may hold identity numbers


@fail_on_errors
def inspect_file(
    input: Annotated[Path, typer.Argument(help="A county file as it is.")],
    layout: Annotated[str | None, typer.Option(help="Force a layout: a name in rules/layouts, or a file.")] = None,
    join: Annotated[list[Path] | None, typer.Option(help="Side sheet to join (repeatable).")] = None,
    rules_dir: Annotated[Path | None, typer.Option("--rules", help="Rules folder (default: shipped).")] = None,
) -> None:
    """Show the detected layout, header lines, recognised and unrecognised columns, rows → households,
    skipped lines, and which decisions the file can and cannot support. Writes nothing."""
    from povertyrules.layouts.coverage import decision_columns, present_columns
    from povertyrules.layouts.prepare import prepare
    from povertyrules.scoring import resolve_rules

    book = resolve_rules(rules_dir)
    p = prepare(input, book, layout, join)
    t = p.table

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    say(f"文件 / file: {input}")
    say(f"格式 / layout: {p.layout.name} — {p.layout.description.zh} / {p.layout.description.en}")
    say(f"表头行 / header line(s): {', '.join(map(str, t.header_rows))}")
    recognised = [f"{t.headers[i]} → {name}" for name, i in sorted(t.columns.items(), key=lambda x: x[1])]
    say(f"识别的列 / recognised columns ({len(recognised)}):\n  " + "\n  ".join(recognised))
    say(f"未识别的列 / unrecognised columns ({len(t.unrecognised)}): " + "、".join(t.unrecognised))
    grain = "一人一行 / one row per person" if p.layout.grain == "person" else "一户一行 / one row per household"
    say(f"数据行 / lines: {p.lines}（{grain}）→ 户 / households: {len(p.frame)}; 跳过 / skipped: {len(p.skipped)}; "
        f"有错误 / with errors: {p.errors['row'].nunique() if len(p.errors) else 0}")
    for row in p.skipped.itertuples(index=False):
        say(f"  跳过第{row.row}行 / skipped line {row.row}: {row.reason}  {row.text[:60]}")
    if len(p.checks):
        say(f"需核对 / to check: {len(p.checks)} (e.g. {p.checks['description'].iloc[0]})")
    present = present_columns(p.frame, book)
    columns = book.columns("household")
    for name, decision in book.decisions.items():
        if decision.entity != "household":
            continue
        missing = sorted(decision_columns(book, name) - present, key=list(columns).index)
        if missing:
            say(f"✗ {decision.description.zh} / {decision.description.en}: 缺 / lacks "
                + "、".join(columns[c].zh for c in missing) + "（相关户将为需评议 / those households will be review）")
        else:
            say(f"✓ {decision.description.zh} / {decision.description.en}: 所需列齐全 / every column present")
