"""Event-driven monitoring throughput: events per second through the durable_rules monitor, and the ratio
to the batch engine on the same households (issue 5; target ≥ 5,000 events/s).

    python benchmarks/bench_monitor.py --households 20000 --events 50000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from povertyrules import load_rules
from povertyrules.datasets.synth import synth, synth_events
from povertyrules.engines.vectorized import evaluate
from povertyrules.io.tables import write_table
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records
from povertyrules.monitor.events import raw_records, validate
from povertyrules.monitor.households import from_file
from povertyrules.monitor.stream import Monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    book = load_rules()
    county = synth(args.households, seed=5, members=False, bad_rate=0)
    households = write_table(county.households, folder / "county.csv")
    events = folder / "events.jsonl"
    made = synth_events(county.households, args.events, seed=5, year=2020, bad_rate=0.005)
    events.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in made), encoding="utf-8")

    state = from_file(households)
    watcher = Monitor(book, state)
    records = list(raw_records(events))
    started = time.perf_counter()
    checked = [validate(n, raw, record, state) for n, raw, record in records]
    alerts = sum(len(watcher.process(e)) for e in checked if not hasattr(e, "reason"))
    loop_s = time.perf_counter() - started
    loop_rate = len(records) / loop_s

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "povertyrules.cli.main", "monitor", str(events), "--households",
                    str(households), "--db", str(folder / "audit.db")], check=True, capture_output=True)
    cli_s = time.perf_counter() - started

    typed = parse_records(county.households, HOUSEHOLD_COLUMNS, "bench", unique="household_id").valid
    batch_s = min(_timed(lambda: evaluate(book, typed)) for _ in range(3))
    batch_rate = len(typed) / batch_s
    print(f"{len(records):,} events over {args.households:,} households; {alerts:,} alerts")
    print(f"monitor loop (validate + durable_rules + alerts)  {loop_rate:12,.0f} events/s   target ≥ 5,000")
    print(f"povertyrules monitor, whole command              {len(records) / cli_s:12,.0f} events/s   "
          f"({cli_s:.2f} s incl. start-up, loading households, storing alerts)")
    print(f"batch engine on the same households              {batch_rate:12,.0f} households/s   "
          f"ratio batch/monitor {batch_rate / loop_rate:,.0f}×")


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
