"""Several `score --store` processes writing into one store at once all land (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from povertyrules.store.database import connect
from povertyrules.store.models import Decision, Run

from .conftest import SAMPLE

WRITERS = 4


def test_parallel_score_store_processes_all_land(db, tmp_path):
    command = [str(Path(sys.executable).with_name("povertyrules"))]
    started = [subprocess.Popen([*command, "score", str(SAMPLE), "-o", str(tmp_path / f"d{i}.csv"), "--store",
                                 "--db", db, "--operator", f"writer{i}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(WRITERS)]
    finished = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in started]
    for code, _, err in finished:
        assert code == 0, err[-2000:]
        assert "Traceback" not in err
    run_ids = sorted(int(out.split()[-1]) for _, out, _ in finished)
    engine = connect(db)
    with Session(engine) as session:
        runs = session.execute(select(Run.id, Run.operator, Run.decided)).all()
        per_run = dict(session.execute(select(Decision.run_id, func.count()).group_by(Decision.run_id)).all())
    assert sorted(r.id for r in runs) == run_ids and len(run_ids) == WRITERS
    assert {r.operator for r in runs} == {f"writer{i}" for i in range(WRITERS)}
    assert all(per_run[r.id] == r.decided > 1900 for r in runs)


def test_a_writer_waits_for_a_long_transaction_instead_of_failing(tmp_path):
    """Another process holds the SQLite write lock longer than sqlite's default 5 s wait: the writer waits."""
    import sqlite3
    import time

    db = tmp_path / "audit.db"
    connect(str(db))
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    writer = subprocess.Popen([str(Path(sys.executable).with_name("povertyrules")), "score", str(SAMPLE), "-o",
                               str(tmp_path / "d.csv"), "--store", "--db", str(db)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    assert writer.poll() is None  # still waiting, not dead
    holder.execute("COMMIT")
    holder.close()
    assert writer.wait(timeout=600) == 0, writer.stderr.read()[-2000:]
    with Session(connect(str(db))) as session:
        assert session.execute(select(func.count()).select_from(Run)).scalar() == 1
