"""`povertyrules datasets …`: synthetic counties for trying, testing and benchmarking."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from povertyrules.cli.common import fail_on_errors

app = typer.Typer(help="Synthetic county data.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
@fail_on_errors
def synth(
    output: Annotated[Path, typer.Option("--output", "-o", help=".xlsx (with a members sheet), .csv or .parquet")],
    households: Annotated[int, typer.Option(help="Number of households.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same county.")] = 0,
    year: Annotated[int, typer.Option(help="Evaluation year written in 年度 (from 2021 the columns of the "
                                           "monitoring regime from 2021 are added).")] = 2020,
    county: Annotated[str, typer.Option(help="County name.")] = "示范县",
    members: Annotated[bool, typer.Option(help="Also write a members sheet/file (ID-1).")] = True,
    headers: Annotated[str, typer.Option(help="zh (Chinese headers) or en.")] = "zh",
    bad_rate: Annotated[float, typer.Option(help="Share of rows with a spoiled cell.")] = 0.002,
    layout: Annotated[str, typer.Option(help="contract, national_export (.xlsx or a GBK .csv), township_roster, "
                                        "monitoring_export or four_look_sheet.")] = "contract",
) -> None:
    """Make a synthetic county: incomes around the lines, 六不评 flags, members, a few blanks and bad cells;
    in the contract's layout or in one that counties hold (the same seed gives the same households)."""
    from povertyrules.datasets.layouts import LAYOUTS, write_layout
    from povertyrules.datasets.synth import synth as make
    from povertyrules.datasets.synth import write_county

    if layout != "contract" and layout not in LAYOUTS:
        raise typer.BadParameter(f"unknown layout {layout!r}: contract, {', '.join(LAYOUTS)}")
    county_data = make(households, seed=seed, year=year, county=county, members=members,
                       bad_rate=bad_rate if layout == "contract" else 0.0)
    if layout != "contract":
        console.print(f"wrote {write_layout(county_data, layout, output, seed=seed, year=year)}")
        return
    for path in write_county(county_data, output, headers=headers):
        console.print(f"wrote {path}")


@app.command()
@fail_on_errors
def registers(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for one CSV per register.")],
    households: Annotated[int, typer.Option(help="Number of households (as given to synth).")] = 2000,
    seed: Annotated[int, typer.Option(help="The seed given to synth: the same people and ID numbers.")] = 0,
    year: Annotated[int, typer.Option(help="Year the records are dated for (vehicles, settlements …).")] = 2020,
    county: Annotated[str, typer.Option(help="County name.")] = "示范县",
) -> None:
    """Department registers (MON-5.1) for the synthetic county of the same size and seed: vehicles, market
    entities, state payroll, urban property, 医保 settlements, disaster losses, disability certificates, 低保/特困."""
    from povertyrules.datasets.registers import write_registers
    from povertyrules.datasets.synth import synth as make

    county_data = make(households, seed=seed, year=year, county=county, bad_rate=0.0)
    for path in write_registers(county_data, output, seed=seed, year=year):
        console.print(f"wrote {path}")


@app.command()
@fail_on_errors
def sample(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Copy it here (default: print its path).")]
    = None,
) -> None:
    """The bundled sample county (2,000 households, Chinese headers, a members sheet): copy it, or print its path."""
    import shutil

    from povertyrules.shipped import sample_county

    source = sample_county()
    if output is None:
        print(source)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, output)
    console.print(f"wrote {output}")


@app.command()
@fail_on_errors
def events(
    households: Annotated[Path, typer.Argument(help="The county spreadsheet the events are about.")],
    output: Annotated[Path, typer.Option("--output", "-o", help=".jsonl or .csv")],
    count: Annotated[int, typer.Option(help="Number of events.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    year: Annotated[int, typer.Option(help="Year the events happen in.")] = 2021,
    bad_rate: Annotated[float, typer.Option(help="Share of events spoiled on purpose.")] = 0.01,
) -> None:
    """Make department alerts and household reports (MON-3, MON-5.1) for a county's households."""

    import pandas as pd

    from povertyrules.datasets.synth import synth_events
    from povertyrules.io.tables import read_table
    from povertyrules.model.columns import HOUSEHOLD_COLUMNS
    from povertyrules.model.records import rename_headers

    frame = rename_headers(read_table(households), HOUSEHOLD_COLUMNS, str(households))
    made = synth_events(frame, count, seed=seed, year=year, bad_rate=bad_rate)
    from povertyrules.io.tables import atomic_output, json_line

    with atomic_output(output) as temporary:
        if output.suffix.lower() == ".csv":
            pd.DataFrame(made).to_csv(temporary, index=False)
        else:
            temporary.write_text("".join(json_line(e) for e in made), encoding="utf-8")
    console.print(f"wrote {len(made)} events to {output}")
