"""System components some tests need (a CJK font, Chromium, PostgreSQL): found, installed, or a skip that says
exactly how to run the test. `.ci/run` installs them all up front; these helpers make `python -m pytest` hold
on a machine where nobody did."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

APT_TIMEOUT = 600  # seconds for one apt-get call


def apt_install(package: str) -> bool:
    """Install a Debian package when running as root with apt-get (``update`` first if the plain install fails)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", package]
    try:
        if subprocess.run(install, env=env, capture_output=True, timeout=APT_TIMEOUT).returncode == 0:
            return True
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=APT_TIMEOUT)
        return subprocess.run(install, env=env, capture_output=True, timeout=APT_TIMEOUT).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def cjk_font(test: str) -> str:
    """The CJK font matplotlib will use for Chinese labels, installing Debian's fonts-wqy-microhei if none is."""
    import povertyrules.analysis as pa

    found = pa.find_cjk_font()
    if found is None and apt_install("fonts-wqy-microhei"):
        found = pa.find_cjk_font()
    if found is None:
        pytest.skip(f"no CJK font for the charts: run `apt-get install fonts-wqy-microhei` (as root), then "
                    f"`python -m pytest {test}`")
    return found


def chromium(test: str) -> str:
    """Debian's Chromium (not installed here: too large to fetch in a test run; `.ci/run` installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(f"Debian's chromium is not installed: run `apt-get install chromium` (as root), then "
                    f"`python -m pytest {test}`")
    return found
