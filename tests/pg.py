"""A throw-away PostgreSQL server for tests: initdb in a temporary directory, a loopback port, stopped after.

`.ci/run` starts one and exports POVERTYRULES_TEST_PG; without it, the fixture starts its own (as the
`postgres` user when running as root, since PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _binary(name: str) -> str | None:
    """On PATH, or where Debian's postgresql package puts it (/usr/lib/postgresql/N/bin, not on PATH)."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
        found = str(candidates[-1]) if candidates else None
    return found


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a ``postgresql://`` URL of a fresh server; skip-worthy RuntimeError when none can start."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise RuntimeError("initdb/pg_ctl not found: run `apt-get install postgresql` (as root), then "
                           "`python -m pytest tests/test_store.py`")
    folder = Path(tempfile.mkdtemp(prefix="povertyrules-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = _free_port()
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                                 f"-p {port} -h 127.0.0.1 -k {folder}", "start"]), check=True, capture_output=True)
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
