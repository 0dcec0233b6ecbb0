"""Set-up as a new user meets it: a missing optional extra is one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = "import sys; sys.modules.update(dict.fromkeys({modules!r})); from povertyrules.cli.main import app; app()"


def run_without(modules: list[str], *args: str, cwd=None) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter where `modules` cannot be imported (as if the extra was not installed)."""
    return subprocess.run([sys.executable, "-c", BLOCK.format(modules=modules), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("missing", ["nbclient", "matplotlib"])
def test_notebook_run_without_the_analysis_extra_names_the_extra_in_one_line(missing, tmp_path):
    done = run_without([missing], "notebook", "run", "--html", str(tmp_path / "x.html"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "povertyrules[analysis]" in lines[0] and missing in lines[0], done.stderr
