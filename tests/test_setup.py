"""Set-up as a new user meets it: a missing optional extra is one clear line, never a traceback; the wheel,
installed in a fresh venv, works from any folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from povertyrules import load_rules
from povertyrules.io.tables import read_table

from .conftest import ROOT

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


# -- the wheel ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package built as a wheel, the way `pip install .` or a release would build it."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    return next(dist.glob("povertyrules-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel (its dependencies are this environment's, reached by a .pth line, so the
    test needs no download; the checkout is not on its path). Returns the venv's bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_the_wheel_carries_every_rule_file_the_sample_and_the_notebook(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    rules = {f"povertyrules/_data/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "rules").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    assert rules and rules <= names  # every file of rules/, whatever folder it is in (layouts/ too)
    assert {"povertyrules/_data/datasets/sample_county.xlsx", "povertyrules/_data/notebooks/at_risk_cohorts.ipynb",
            "povertyrules/policy/identification-and-exit.md", "povertyrules/web/templates/household.html"} <= names


def test_the_installed_wheel_scores_explains_checks_and_serves_from_any_folder(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "POVERTYRULES_DB")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(installed / "povertyrules"), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    where = subprocess.run([str(installed / "python"), "-c", "import povertyrules; print(povertyrules.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert str(installed.parent) in where and str(ROOT) not in where
    cli("datasets", "sample", "-o", "sample.xlsx")
    stored = cli("score", "sample.xlsx", "-o", "out/decisions.xlsx", "--store", "--db", "audit.db")
    assert "input lines 2000 = decided" in stored.stderr
    assert f"rules_version {load_rules().version}" in stored.stderr  # the same rules as the checkout's
    decisions = read_table(work / "out" / "decisions.xlsx")
    assert len(decisions) + read_table(work / "out" / "decisions.errors.xlsx")["row"].nunique() == 2000
    assert "rules check passed" in cli("rules", "check").stdout
    household = decisions["household_id"].iloc[0]
    assert "ID-3" in cli("explain", household, "--db", "audit.db").stdout
    port = _free_port()
    server = subprocess.Popen([str(installed / "povertyrules"), "serve", "--db", "audit.db", "--port", str(port)],
                              cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        page = _get(f"http://127.0.0.1:{port}/household/{household}", server)
        assert household in page and "ID-3" in page
        assert '"decided":' in _get(f"http://127.0.0.1:{port}/api/runs", server)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, server: subprocess.Popen, wait: float = 60) -> str:
    deadline = time.time() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read().decode("utf-8")
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                raise
            time.sleep(0.3)
