"""Audit-store benchmark: time to store a run of N decisions on SQLite and on PostgreSQL, the store's size per
household, `store verify`, and `explain` latency.

    python benchmarks/bench_store.py --households 1000000 [--backends sqlite,postgresql] [--db postgresql://…]

The run is scored once and stored in each backend (a SQLite file in a temporary folder; a throw-away PostgreSQL
server started as the tests start one, `tests/pg.py`, unless `--db` names one). Prints its figures; targets
(issue 13): store a 1M run in ≤ 20 s on each backend, explain p50 ≤ 20 ms. Not a unit test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from povertyrules import load_rules, score
from povertyrules.datasets.synth import synth
from povertyrules.store import integrity
from povertyrules.store.database import connect
from povertyrules.store.explain import explain_decisions
from povertyrules.store.runs import decision_of, get_run, reasons_of, record_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--db", default=None, help="a PostgreSQL URL to use instead of starting a server")
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    book = load_rules()
    county = synth(args.households, seed=7, members=False, bad_rate=0, book=book)
    source = folder / "county.csv"
    county.households.to_csv(source, index=False)

    started = time.perf_counter()
    result = score(county.households, rules=book, keep_records=True)
    scored = time.perf_counter() - started
    households = len(result.decisions)
    print(f"households stored           {households:,} ({_load()})")
    print(f"score (with records)        {scored:8.2f} s")
    for backend in args.backends.split(","):
        with _database(backend.strip(), folder, args.db) as db:
            if db is None:
                continue
            _measure(db, result, source, args.lookups)


@contextlib.contextmanager
def _database(backend: str, folder: Path, url: str | None):
    if backend == "sqlite":
        yield str(folder / "audit.db")
        return
    if backend != "postgresql":
        raise SystemExit(f"unknown backend {backend!r} (sqlite, postgresql)")
    if url:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.pg import postgres_server  # the tests' throw-away server: initdb in a temporary folder

    try:
        with postgres_server() as started:
            yield started
    except (RuntimeError, OSError) as exc:
        print(f"postgresql                  not measured: no server could be started ({exc})")
        yield None


def _size(engine) -> int:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            pages = connection.execute(text("PRAGMA page_count")).scalar()
            return int(pages) * int(connection.execute(text("PRAGMA page_size")).scalar())
        return int(connection.execute(text("SELECT pg_database_size(current_database())")).scalar())


def _measure(db: str, result, source: Path, lookups: int) -> None:
    engine = connect(db)
    name = engine.dialect.name
    empty = _size(engine)
    print(f"--- {name} ({_load()})")
    server = _server_cpu(engine)
    started, cpu = time.perf_counter(), time.process_time()
    run_id = record_run(engine, result, source, operator="bench")
    stored, cpu = time.perf_counter() - started, time.process_time() - cpu
    server = _server_cpu(engine) - server if server is not None else None
    households = len(result.decisions)
    size = _size(engine) - empty
    print(f"{name:10s} store run      {stored:8.2f} s  ({households / stored:,.0f} decisions/s)   target ≤ 20 s at 1M")
    in_server = f" + {server:.2f} s in the server" if server is not None else ""
    print(f"{name:10s} store CPU      {cpu:8.2f} s in this process{in_server} (less sensitive to load than wall time)")
    print(f"{name:10s} store size     {size / households:8.0f} bytes per household ({size / 2**20:,.0f} MiB)")
    started = time.perf_counter()
    report = integrity.verify(engine)
    print(f"{name:10s} store verify   {time.perf_counter() - started:8.2f} s  (every row re-hashed: "
          f"{'ok' if report.ok else report.problems})")

    ids = random.Random(1).sample(list(result.decisions["household_id"]), min(lookups, households))
    explain_decisions(get_run(engine, run_id), [decision_of(engine, ids[0])])  # warm
    found, full, cpu = [], [], 0.0
    for household in ids:
        t0 = time.perf_counter()
        decision = decision_of(engine, household)
        reasons_of(engine, household, decision.run_id)
        t1, c1 = time.perf_counter(), time.process_time()
        decision = decision_of(engine, household)  # what `explain` does: one evaluation for reasons and what-ifs
        explain_decisions(get_run(engine, decision.run_id), [decision])
        t2, cpu = time.perf_counter(), cpu + time.process_time() - c1
        found.append(t1 - t0)
        full.append(t2 - t1)

    from fastapi.testclient import TestClient

    from povertyrules.web.app import create_app

    client = TestClient(create_app(db))
    client.get(f"/household/{ids[0]}")  # warm
    pages = []
    for household in ids:
        t0 = time.perf_counter()
        assert client.get(f"/household/{household}").status_code == 200
        pages.append(time.perf_counter() - t0)

    def ms(values: list[float], q: float) -> float:
        return 1000 * statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else 1000 * values[0]

    print(f"{name:10s} lookup decision + reasons   p50 {ms(found, 50):6.1f} ms   p95 {ms(found, 95):6.1f} ms")
    print(f"{name:10s} explain (with what-ifs)     p50 {ms(full, 50):6.1f} ms   p95 {ms(full, 95):6.1f} ms   "
          f"target ≤ 20 ms; CPU {1000 * cpu / len(ids):.1f} ms each in this process ({_load()})")
    print(f"{name:10s} web household page          p50 {ms(pages, 50):6.1f} ms   p95 {ms(pages, 95):6.1f} ms")
    engine.dispose()


def _server_cpu(engine) -> float | None:
    """CPU seconds used so far by a PostgreSQL server's processes (its postmaster and children), when this
    machine runs it and /proc shows them; None otherwise (SQLite works in this process)."""
    if engine.dialect.name != "postgresql":
        return None
    try:
        with engine.connect() as connection:
            data = Path(connection.execute(text("SHOW data_directory")).scalar())
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(stat.parent.name) == postmaster or int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
