"""Audit-store benchmark: time to store N decisions (with their reasons) and `explain` latency.

    python benchmarks/bench_store.py --households 1000000 [--db postgresql://…]

Prints its figures; targets (issue 4): explain under 50 ms on a store of 1M decisions. Not a unit test.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from povertyrules import load_rules, score
from povertyrules.datasets.synth import synth
from povertyrules.store.database import connect
from povertyrules.store.explain import explain_stored
from povertyrules.store.runs import decision_of, get_run, reasons_of, record_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--db", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    db = args.db or str(folder / "audit.db")
    book = load_rules()
    county = synth(args.households, seed=7, members=False, bad_rate=0, book=book)
    source = folder / "county.csv"
    county.households.to_csv(source, index=False)

    started = time.perf_counter()
    result = score(county.households, rules=book, keep_records=True)
    scored = time.perf_counter() - started
    engine = connect(db)
    started = time.perf_counter()
    run_id = record_run(engine, result, source, operator="bench")
    stored = time.perf_counter() - started
    reasons = result.records.num_rows if result.records is not None else 0

    ids = random.Random(1).sample(list(result.decisions["household_id"]), min(args.lookups, len(result.decisions)))
    explain_stored(get_run(engine, run_id), decision_of(engine, ids[0]), reasons_of(engine, ids[0], run_id))  # warm
    lookups, full = [], []
    for household in ids:
        t0 = time.perf_counter()
        decision = decision_of(engine, household)
        stored_reasons = reasons_of(engine, household, decision.run_id)
        t1 = time.perf_counter()
        explain_stored(get_run(engine, decision.run_id), decision, stored_reasons)
        t2 = time.perf_counter()
        lookups.append(t1 - t0)
        full.append(t2 - t0)

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
        return 1000 * statistics.quantiles(values, n=100)[int(q) - 1]

    print(f"backend                     {engine.dialect.name}")
    print(f"households stored           {len(result.decisions):,} ({reasons:,} reason rows)")
    print(f"score (with records)        {scored:8.2f} s")
    print(f"store run                   {stored:8.2f} s  ({len(result.decisions) / stored:,.0f} decisions/s)")
    print(f"lookup decision + reasons   p50 {ms(lookups, 50):6.1f} ms   p95 {ms(lookups, 95):6.1f} ms")
    print(f"explain (with what-ifs)     p50 {ms(full, 50):6.1f} ms   p95 {ms(full, 95):6.1f} ms   target < 50 ms")
    print(f"web household page          p50 {ms(pages, 50):6.1f} ms   p95 {ms(pages, 95):6.1f} ms   target < 100 ms")


if __name__ == "__main__":
    main()
