"""The decisions.xlsx export of a stored run: time and peak memory, against writing the same rows as CSV.

    python benchmarks/bench_export.py --households 200000 [--db postgresql://…] [--before DIR] [--no-cli]

Stores a synthetic county (seed 7), then measures in one run, each export in a process of its own:
(1) the floor: the same decision rows written as CSV by pyarrow; (2) the web download's build
(`povertyrules.web.exports.build`: the run read from the store a block at a time into the workbook), its
seconds and peak RSS; (3) unless `--no-cli`, `povertyrules score county.csv -o d.xlsx` against `-o d.csv`.
`--before DIR` also runs (2) with the code in DIR (another checkout of the project) on the same store, so a
change is measured before and after in the same run. Target (issue 13): a 200k export ≤ 15 s, bounded memory.
Not a unit test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child_export(db: str, lang: str, out: str) -> None:
    """Run in a fresh process: build the run's decisions workbook and print seconds and memory as JSON."""
    import pandas  # noqa: F401 - loaded before the clock starts, as in a server's worker

    from povertyrules.web.exports import build

    started_rss = _rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    build(db, 1, "decisions", lang, "", False, out)
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                      "peak_mb": _peak_mb(), "start_mb": started_rss, "bytes": Path(out).stat().st_size}))


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent that started it)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


#: `povertyrules score …` that prints its own peak RSS on exit
SCORE = ("import atexit, json, sys; sys.path.insert(0, sys.argv.pop(1)); from bench_export import _peak_mb; "
         "atexit.register(lambda: print(json.dumps({'peak_mb': _peak_mb()}), file=sys.stderr)); "
         "from povertyrules.cli.main import app; app(sys.argv[1:], prog_name='povertyrules')")


def _run(command: list[str], env: dict | None = None) -> tuple[str, str, float]:
    """Run `command`; its output, its error output and its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(done.stderr)
    return done.stdout, done.stderr, time.perf_counter() - started


def _export(db: str, lang: str, out: Path, code: Path | None = None) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    printed, _, _ = _run([sys.executable, __file__, "--child-export", db, lang, str(out)], env)
    return json.loads(printed.strip().splitlines()[-1])


def _score(source: Path, out: Path, lang: str) -> tuple[float, float]:
    _, errors, seconds = _run([sys.executable, "-c", SCORE, str(Path(__file__).parent), "score", str(source),
                               "-o", str(out), "--lang", lang])
    return seconds, json.loads(errors.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--households", type=int, default=200_000)
    parser.add_argument("--db", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--lang", default="zh", choices=["zh", "en"])
    parser.add_argument("--before", type=Path, default=None, help="another checkout of the project, run the same")
    parser.add_argument("--no-cli", action="store_true", help="skip `score -o .xlsx` against `-o .csv`")
    parser.add_argument("--child-export", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export:
        _child_export(*args.child_export)
        return

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from povertyrules import load_rules, score
    from povertyrules.datasets.synth import synth
    from povertyrules.decisions.files import localize
    from povertyrules.store.database import connect
    from povertyrules.store.runs import record_run

    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    db = args.db or str(folder / "audit.db")
    book = load_rules()
    county = synth(args.households, seed=7, members=False, bad_rate=0, book=book)
    source = folder / "county.csv"
    county.households.to_csv(source, index=False)
    result = score(county.households, rules=book, keep_records=True)
    started = time.perf_counter()
    record_run(connect(db), result, source, operator="bench")
    stored = time.perf_counter() - started

    rows = localize(result.decisions, book, args.lang)
    started = time.perf_counter()
    table = pa.Table.from_pandas(rows, preserve_index=False)
    pacsv.write_csv(table, folder / "floor.csv")
    floor = time.perf_counter() - started

    print(f"machine                     {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print(f"households                  {len(result.decisions):,} (store: {stored:.1f} s)")
    print(f"floor: same rows as CSV     {floor:8.2f} s  (pyarrow write_csv, in memory)")
    runs: list[tuple[str, Path | None]] = [("after", None)] + ([("before", args.before)] if args.before else [])
    for label, code in runs:
        figure = _export(db, args.lang, folder / f"{label}.xlsx", code)
        print(f"decisions.xlsx export, {label:6} {figure['seconds']:6.2f} s = {figure['seconds'] / floor:5.1f}× the "
              f"floor (cpu {figure['cpu']:.1f} s)   target ≤ 15 s")
        print(f"    peak RSS {figure['peak_mb']:,.0f} MB ({figure['peak_mb'] - figure['start_mb']:+,.0f} MB over "
              f"start-up), file {figure['bytes'] / 1e6:.1f} MB")
    if not args.no_cli:
        csv_seconds, csv_peak = _score(source, folder / "d.csv", args.lang)
        xlsx_seconds, xlsx_peak = _score(source, folder / "d.xlsx", args.lang)
        print(f"score CSV → CSV             {csv_seconds:8.2f} s   peak RSS {csv_peak:,.0f} MB")
        print(f"score CSV → xlsx            {xlsx_seconds:8.2f} s   peak RSS {xlsx_peak:,.0f} MB   "
              f"({xlsx_seconds - csv_seconds:+.1f} s for the workbook)")
    print(f"load average at end         {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
