"""`povertyrules score 'dir/*.parquet' --dask [--scheduler ADDRESS]`: the CLI side of `povertyrules.dask_scoring`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from povertyrules.cli.common import summary_table
from povertyrules.errors import PovertyRulesError, require

console = Console(stderr=True)


def score_on_dask(input: Path, output: Path, members: Path | None, year: int | None, rules_dir: Path | None,
                  override: list[Path] | None, sets: dict[str, Any], lang: str, store: bool, db: str | None,
                  operator: str | None, scheduler: str | None, workers: int | None) -> None:
    from povertyrules.dask_scoring import Job
    from povertyrules.dask_scoring import score_on_dask as run

    if members is not None:
        raise PovertyRulesError("--members is not supported with --dask: give each file a 家庭人口 (members) "
                                "column / --dask 时请在每个文件中给出“家庭人口”列")
    require("score --dask", "dask", "dask", "distributed")
    job = Job(str(rules_dir) if rules_dir else None, tuple(str(o) for o in override or ()), sets, year, lang)
    with Progress(TextColumn("partitions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("score", total=None)
        result = run(str(input), output, job, address=scheduler, workers=workers, store=store, db=db,
                     operator=operator, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"{len(result.parts)} partitions scored on Dask ({scheduler or 'LocalCluster'})")
    console.print(summary_table(result))
    counts = result.accounting()
    console.print(f"输入行 {counts['input_rows']} = 已判定 {counts['decided']} + 有错误 {counts['error_rows']}\n"
                  f"input rows {counts['input_rows']} = decided {counts['decided']} + rows with errors "
                  f"{counts['error_rows']}", highlight=False, markup=False)
    console.print(f"decisions: {result.decisions}/part-*.parquet\nerrors:    {result.errors}/part-*.parquet "
                  f"({result.error_lines} error lines)", highlight=False, markup=False)
    if counts["input_rows"] != counts["decided"] + counts["error_rows"]:  # pragma: no cover - an invariant
        raise typer.Exit(3)
    if result.run_id is not None:
        console.print(f"已存入审计库：第 {result.run_id} 次运行\nstored as run {result.run_id}", highlight=False)
        print(result.run_id)
