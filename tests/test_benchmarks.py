"""The benchmark scripts keep working: a tiny smoke run prints every figure (timings are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_scoring_benchmark_prints_every_figure():
    out = run("bench_score.py", "--households", "2000", "--quick", "--excel-households", "300",
              "--baseline-households", "40")
    for label in ("I/O floor", "povertyrules score, CSV → CSV", "× the floor", "peak RSS", "rules only",
                  "DataFrame.apply", "durable_rules, one fact per household", "xlsx (xlsxwriter)",
                  "xlsx (calamine)"):
        assert label in out, label


def test_the_store_benchmark_prints_store_time_size_and_explain_latency_on_both_backends(postgres_db):
    out = run("bench_store.py", "--households", "300", "--lookups", "20", "--db", postgres_db)
    for backend in ("sqlite", "postgresql"):
        for label in ("store run", "store size", "store verify", "explain (with what-ifs)"):
            assert f"{backend:10s} {label}" in out, (backend, label, out)
    assert out.count("bytes per household") == 2 and out.count("re-hashed: ok)") == 2


def test_the_monitor_benchmark_prints_events_per_second_and_the_ratio():
    out = run("bench_monitor.py", "--households", "300", "--events", "500")
    assert "events/s" in out and "ratio batch/monitor" in out


def test_the_register_benchmark_prints_the_added_share():
    out = run("bench_registers.py", "--people", "3000", "--records", "3000")
    assert "added by the registers" in out and "match, window, facts, evidence" in out


def test_the_web_benchmark_prints_latencies_under_load_and_during_downloads():
    out = run("bench_web.py", "--households", "200", "--readers", "3", "--requests", "2", "--downloads", "1")
    assert "(a) one reader" in out and "(b) 3 concurrent readers" in out and "p99" in out
    assert "(c) the same while 1 decisions.xlsx downloads run" in out and "download:" in out
    assert "server CPU" in out and "ms per page" in out


def test_the_export_benchmark_prints_the_export_against_the_floor_and_its_memory():
    out = run("bench_export.py", "--households", "300")
    assert "floor: same rows as CSV" in out and "decisions.xlsx export, after" in out and "peak RSS" in out
    assert "score CSV → xlsx" in out
