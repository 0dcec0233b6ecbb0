"""The inspector's pages under load, on loopback: concurrent readers of household pages, alone and while large
workbooks are downloaded.

    python benchmarks/bench_web.py --households 20000 --readers 50 --requests 10

Stores a synthetic county, starts `povertyrules serve` as a separate process, then measures in one run:
(a) one reader alone (the baseline), (b) `--readers` concurrent readers each opening `--requests` household
pages (distinct households: every explanation is worked out, not cached), (c) the same while downloads of the
decisions workbook run, counting how long each download took. Prints p50 / p99 and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        size = 0
        while chunk := response.read(1 << 16):
            size += len(chunk)
    return time.perf_counter() - start, size


def _tree(pid: int) -> list[int]:
    """A process and its descendants (the server and its worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _quantiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _readers(base: str, ids: list[str], readers: int, requests: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def reader(k: int) -> None:
        for j in range(requests):
            elapsed, _ = _get(f"{base}/household/{ids[(k * requests + j) % len(ids)]}")
            with lock:
                times.append(elapsed)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10, help="household pages per reader")
    parser.add_argument("--downloads", type=int, default=4, help="concurrent workbook downloads in phase (c)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes (serve --workers)")
    args = parser.parse_args()

    from povertyrules import score
    from povertyrules.datasets.synth import synth
    from povertyrules.store.database import connect
    from povertyrules.store.runs import record_run

    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    db = str(folder / "audit.db")
    frame = synth(args.households, seed=14, members=False, bad_rate=0).households
    started = time.perf_counter()
    result = score(frame, keep_records=True)
    record_run(connect(db), result, "synthetic.csv")
    print(f"stored {len(result.decisions):,} households in {time.perf_counter() - started:.1f} s")
    ids = list(result.decisions["household_id"].sample(frac=1.0, random_state=1))

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "povertyrules.cli.main", "serve", "--db", db, "--port",
                               str(port), "--workers", str(args.workers)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        print(f"server: {server.stdout.readline().strip()} ({args.workers} worker processes)")
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                _get(f"{base}/api/runs")
                break
            except OSError:
                time.sleep(0.2)
        for i in range(1, 4 * args.workers + 1):  # warm: each worker rebuilds the run's rule set once
            _get(f"{base}/household/{ids[-i]}")

        alone = [_get(f"{base}/household/{ids[i]}")[0] for i in range(20)]
        p50_alone, p99_alone = _quantiles(alone)
        print(f"(a) one reader: p50 {p50_alone * 1000:.0f} ms, p99 {p99_alone * 1000:.0f} ms")

        offset = 20
        processes = _tree(server.pid)
        cpu, load = _cpu(processes), os.getloadavg()[0]
        loaded = _readers(base, ids[offset:], args.readers, args.requests)
        cpu, load = _cpu(processes) - cpu, f"load average {load:.1f} → {os.getloadavg()[0]:.1f}"
        p50, p99 = _quantiles(loaded)
        print(f"(b) {args.readers} concurrent readers × {args.requests} pages: p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms (target p99 < 1000 ms: {'met' if p99 < 1 else 'NOT met'}); "
              f"p99 / one reader's p50 = {p99 / p50_alone:.1f}×")
        print(f"    server CPU {cpu * 1000 / len(loaded):.1f} ms per page (all its processes; {load})")

        downloads: list[tuple[float, int]] = []

        def download() -> None:
            downloads.append(_get(f"{base}/run/1/decisions.xlsx"))

        pullers = [threading.Thread(target=download) for _ in range(args.downloads)]
        for t in pullers:
            t.start()
        offset += args.readers * args.requests
        during = _readers(base, ids[offset:], args.readers, args.requests)
        for t in pullers:
            t.join()
        p50_d, p99_d = _quantiles(during)
        print(f"(c) the same while {args.downloads} decisions.xlsx downloads run: p50 {p50_d * 1000:.0f} ms, "
              f"p99 {p99_d * 1000:.0f} ms ({'met' if p99_d < 1 else 'NOT met'}); p99 ratio to (b) "
              f"{p99_d / p99:.2f}×")
        for elapsed, size in downloads:
            print(f"    download: {size / 1e6:.1f} MB in {elapsed:.1f} s")
        again = _get(f"{base}/run/1/decisions.xlsx")
        print(f"    download once built: {again[1] / 1e6:.1f} MB in {again[0]:.2f} s")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
