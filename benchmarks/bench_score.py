"""Batch scoring at county and province scale: prints, in one run, the I/O floor, end to end, rules only,
per-row baselines, Excel and memory figures (issue 8). Ratios are measured against baselines in the same run.

    python benchmarks/bench_score.py --households 1000000
    python benchmarks/bench_score.py --households 3000 --quick      # the smoke run CI keeps working

Not a unit test: it prints figures and exits 0; targets are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv

from povertyrules import load_rules
from povertyrules.datasets.synth import chinese_headers, synth
from povertyrules.engines.scalar import evaluate_row
from povertyrules.engines.vectorized import evaluate
from povertyrules.io.tables import read_table, write_table
from povertyrules.layouts.prepare import prepare
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records

SEED = 8
CHUNK = 50_000  # rows per evaluation, as `povertyrules.score` does


def timed(action: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of `repeat` runs (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


# Runs the command in a fresh interpreter and reports that process's own peak RSS (VmHWM). getrusage's
# ru_maxrss of a child is not usable here: on Linux it keeps the high-water mark of the (large) parent.
_WRAPPER = """
import sys
from povertyrules.cli.main import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))
    sys.stderr.write('PEAK ' + peak.split()[1] + '\\n')
"""


def run_cli(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `povertyrules` process; its CPU seconds (user + system, all threads) and
    the machine's load average are kept in `CPU` to be printed beside them (wall time moves with the load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"povertyrules {' '.join(args)} failed: {done.stderr[-2000:]}")
    peak_kb = int(next(line for line in done.stderr.splitlines() if line.startswith("PEAK")).split()[1])
    CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU[1] = os.getloadavg()[0]
    return elapsed, peak_kb / 1024


CPU = [0.0, 0.0]  # the last `run_cli`: CPU seconds of the process, 1-minute load average when it ended


def cpu_note() -> str:
    return f"CPU {CPU[0]:.1f} s, load {CPU[1]:.1f}"


def county_csv(folder: Path, households: int) -> Path:
    path = folder / f"county_{households}.csv"
    if not path.exists():
        county = synth(households, seed=SEED, members=False)
        pacsv.write_csv(__import__("pyarrow").Table.from_pandas(county.households, preserve_index=False), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--excel-households", type=int, default=100_000)
    parser.add_argument("--baseline-households", type=int, default=2_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, no scaling series")
    args = parser.parse_args()
    n = args.households
    excel_n = min(args.excel_households, n) if args.quick else args.excel_households
    folder = Path(tempfile.mkdtemp(prefix="bench-score-"))
    book = load_rules()
    rows: list[tuple[str, str, str]] = []

    def report(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"{name:<46} {value:>16}  {note}", flush=True)

    print(f"{n:,} households, seed {SEED}, {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    source = county_csv(folder, n)
    table = pacsv.read_csv(source)

    # 1. the I/O floor
    read_s = timed(lambda: pacsv.read_csv(source), 3)
    write_s = timed(lambda: pacsv.write_csv(table, folder / "floor.csv"), 3)
    frame = table.to_pandas()
    pandas_read_s = timed(lambda: pd.read_csv(source, dtype=str))
    pandas_write_s = timed(lambda: frame.to_csv(folder / "naive.csv", index=False))
    floor = read_s + write_s
    floor_cpu = time.process_time()
    pacsv.write_csv(pacsv.read_csv(source), folder / "floor.csv")
    floor_cpu = time.process_time() - floor_cpu
    report("1. read CSV (pyarrow)", f"{read_s:.2f} s", f"load {os.getloadavg()[0]:.1f}")
    report("   write CSV (pyarrow write_csv)", f"{write_s:.2f} s")
    report("   I/O floor = read + write", f"{floor:.2f} s", f"CPU {floor_cpu:.1f} s (Arrow's threads)")
    report("   pandas read_csv (text) / DataFrame.to_csv", f"{pandas_read_s:.2f} / {pandas_write_s:.2f} s",
           "what a naive tool pays")

    # 2. end to end, CSV in and CSV out
    e2e_s, e2e_mb = run_cli(["score", str(source), "-o", str(folder / "decisions.csv"), "--lang", "en"])
    report("2. povertyrules score, CSV → CSV", f"{e2e_s:.2f} s",
           f"{e2e_s / floor:.1f}× the floor (target ≤ 2×); {cpu_note()}")
    report("   peak RSS end to end", f"{e2e_mb:,.0f} MB", "target ≤ 1,000 MB at 1M (issue 13)")
    parquet_s, parquet_mb = run_cli(["score", str(source), "-o", str(folder / "decisions.parquet"), "--lang", "en"])
    report("   povertyrules score, CSV → Parquet", f"{parquet_s:.2f} s",
           f"{parquet_s / floor:.1f}× the floor (target ≤ 1.5×); peak RSS {parquet_mb:,.0f} MB; {cpu_note()}")
    full_s, _ = run_cli(["score", str(source), "-o", str(folder / "full.csv"), "--lang", "en", "--reasons", "full"])
    report("   CSV → CSV with --reasons full", f"{full_s:.2f} s", f"{full_s / floor:.1f}× the floor; {cpu_note()}")

    # 2b. reading and validating in-process: the layout step, then typing every contract cell (error rows)
    prepared_s = timed(lambda: prepare(source, book))
    prepared = prepare(source, book)
    parse = lambda fast: parse_records(prepared.frame, HOUSEHOLD_COLUMNS, "bench", unique="household_id",  # noqa: E731
                                       rows=prepared.rows, fast=fast)
    parse_s, text_s = timed(lambda: parse(True)), timed(lambda: parse(False))
    report("   read + find the layout (prepare)", f"{prepared_s:.2f} s", f"{prepared_s / read_s:.1f}× the pyarrow read")
    report("   type and validate every cell (Arrow-typed)", f"{parse_s:.2f} s",
           f"every cell through the text path: {text_s:.2f} s")

    # 3. rules only, on an in-memory typed frame, in the cache-sized chunks `score` uses
    typed = parse(True).valid
    chunks = [typed.iloc[i:i + CHUNK].reset_index(drop=True) for i in range(0, len(typed), CHUNK)]
    rules_s = timed(lambda: [evaluate(book, chunk) for chunk in chunks], 3)
    rules_rate = len(typed) / rules_s
    whole_s = timed(lambda: evaluate(book, typed), 2)
    report("3. rules only (batch engine, 50k chunks)", f"{rules_rate:,.0f} /s",
           f"target ≥ 2,000,000 /s; one {len(typed):,}-row frame: {len(typed) / whole_s:,.0f} /s")

    # 4. per-row baselines on a subset
    subset = typed.head(args.baseline_households)
    apply_s = timed(lambda: subset.apply(lambda r: evaluate_row(book, r.to_dict()), axis=1))
    apply_rate = len(subset) / apply_s
    report("4. DataFrame.apply, per-row Python", f"{apply_rate:,.0f} /s",
           f"batch is {rules_rate / apply_rate:,.0f}× faster (target ≥ 100×)")
    try:
        from povertyrules.engines.durable import DurableEngine
    except ImportError:  # pragma: no cover - the durable engine ships with the package
        report("   durable_rules, one fact per household", "not built", "")
    else:
        engine = DurableEngine(book)
        records = subset.to_dict("records")
        durable_s = timed(lambda: engine.decide_many(records))
        durable_rate = len(subset) / durable_s
        report("   durable_rules, one fact per household", f"{durable_rate:,.0f} /s",
               f"batch is {rules_rate / durable_rate:,.0f}× faster (target ≥ 100×)")

    # 5. Excel with Chinese headers
    xlsx_county = synth(excel_n, seed=SEED, members=False)
    chinese = chinese_headers(xlsx_county.households)
    xlsx = folder / "county.xlsx"
    write_s = timed(lambda: write_table(chinese, xlsx))
    openpyxl_s = timed(lambda: chinese.to_excel(folder / "openpyxl.xlsx", index=False, engine="openpyxl"))
    read_xlsx_s = timed(lambda: read_table(xlsx))
    report(f"5. write {excel_n:,} households xlsx (xlsxwriter)", f"{write_s:.2f} s",
           f"openpyxl {openpyxl_s:.2f} s")
    report(f"   read {excel_n:,} households xlsx (calamine)", f"{read_xlsx_s:.2f} s")

    # 6. growth of time and memory
    if not args.quick:
        previous = None
        for size in (10_000, 100_000, n) if n > 100_000 else (n // 10, n):
            path = county_csv(folder, size)
            seconds, mb = run_cli(["score", str(path), "-o", str(folder / f"d{size}.csv"), "--lang", "en"])
            growth = "" if previous is None else (f"×{size / previous[0]:.0f} rows: time ×{seconds / previous[1]:.1f}, "
                                                  f"memory ×{mb / previous[2]:.1f}")
            report(f"6. end to end at {size:,}", f"{seconds:.2f} s, {mb:,.0f} MB", growth)
            previous = (size, seconds, mb)
    print(f"\nfiles in {folder}")


if __name__ == "__main__":
    main()
