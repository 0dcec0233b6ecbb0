"""`povertyrules notebook run`: execute an analysis notebook and export it to HTML for people without Jupyter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from povertyrules import shipped
from povertyrules.cli.common import fail_on_errors
from povertyrules.errors import require

app = typer.Typer(help="Analysis notebooks.", no_args_is_help=True)
console = Console(stderr=True)


def __getattr__(name: str):
    if name == "DEFAULT":  # the shipped notebook (checkout, else package data)
        return shipped.notebook()
    raise AttributeError(name)


def execute(notebook: Path, html: Path | None = None, executed: Path | None = None, timeout: int = 600):
    """Run every cell (in the notebook's folder) and optionally write the executed copy and an HTML export."""
    require("notebook run", "analysis", "nbclient", "nbformat", "nbconvert", "ipykernel", "matplotlib")
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}}).execute()
    if executed:
        nbformat.write(nb, executed)
    if html:
        body, _ = HTMLExporter().from_notebook_node(nb)
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(body, encoding="utf-8")
    return nb


@app.command()
@fail_on_errors
def run(
    notebook: Annotated[Path | None, typer.Argument(help="The notebook (default: the shipped at_risk_cohorts.ipynb).")]
    = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML export here.")] = None,
    executed: Annotated[Path | None, typer.Option(help="Write the executed notebook here.")] = None,
) -> None:
    """Execute the notebook end to end; export it to HTML with every chart embedded."""
    notebook = notebook or shipped.notebook()
    execute(notebook, html, executed)
    console.print(f"ran {notebook}" + (f"; HTML: {html}" if html else ""))
