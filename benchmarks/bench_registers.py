"""Department registers at county-province scale (issue 16): what matching N people against M register
records adds to a `score` run of the same people, both measured in this run as separate processes.

    python benchmarks/bench_registers.py --people 1000000 --records 1000000
    python benchmarks/bench_registers.py --people 3000 --records 3000        # the smoke run CI keeps working

The people are a synthetic national export (one row per person, CSV); the records are half vehicle
registrations, half 医保 settlements, 95 % of them of the county's people (drawn with repetition), 5 % of
people of no household. Target: the registers add at most 25 % to the plain `score` run.
Not a unit test: it prints figures and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_score import run_cli

from povertyrules.datasets.layouts import national_export, valid_id
from povertyrules.datasets.synth import synth
from povertyrules.lang.rulebook import load_rulebook
from povertyrules.layouts.prepare import prepare
from povertyrules.registers.match import apply_registers, read_register
from povertyrules.registers.spec import load_registers

SEED = 16
TARGET = 0.25


def make(folder: Path, people: int, records: int) -> tuple[Path, Path, Path]:
    households = max(1, int(people / 3.45))
    county = synth(households, seed=SEED, members=False, bad_rate=0.0)
    export = national_export(county, SEED)
    path = folder / "export.csv"
    export.to_csv(path, index=False)
    rng = np.random.default_rng(SEED)
    ids = export["证件号码"].to_numpy()
    half = records // 2
    strangers = np.array([valid_id(f"520102199{i % 10}0{1 + i % 9}1{i % 9}{i % 1000:03d}") for i in range(1000)])

    def who(n: int) -> np.ndarray:
        mine = rng.random(n) < 0.95
        return np.where(mine, ids[rng.integers(0, len(ids), n)], strangers[rng.integers(0, len(strangers), n)])

    def dates(n: int, first: int, last: int) -> np.ndarray:
        start = np.datetime64(f"{first}-01-01")
        return (start + rng.integers(0, (np.datetime64(f"{last}-12-31") - start).astype(int) + 1, n)).astype(str)

    vehicles = folder / "vehicles.csv"
    pd.DataFrame({"号牌号码": [f"贵E{i:06d}" for i in range(half)],
                  "车辆类型": rng.choice(["小型轿车", "面包车", "二轮摩托车", "三轮汽车"], half),
                  "身份证明号码": who(half), "初次登记日期": dates(half, 2008, 2020),
                  "注销日期": None}).to_csv(vehicles, index=False)
    medical = folder / "medical.csv"
    rest = records - half
    pd.DataFrame({"结算日期": dates(rest, 2020, 2020), "参保人证件号码": who(rest),
                  "就诊类型": rng.choice(["住院", "门诊慢特病"], rest),
                  "医疗总费用": np.round(rng.uniform(200, 20000, rest), 2),
                  "合规自付费用": np.round(rng.uniform(50, 8000, rest), 2)}).to_csv(medical, index=False)
    return path, vehicles, medical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-registers-"))
    print(f"{args.people:,} people, {args.records:,} register records, seed {SEED}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}\n", flush=True)
    export, vehicles, medical = make(folder, args.people, args.records)
    base = ["score", str(export), "--year", "2020", "-o", str(folder / "plain.csv")]
    plain_s, plain_mb = run_cli(base)
    assert (folder / "plain.csv").exists(), "the plain score run wrote no decisions"
    print(f"{'score, national export CSV → CSV':<52} {plain_s:>8.2f} s {plain_mb:>8.0f} MB", flush=True)
    with_args = ["score", str(export), "--year", "2020", "-o", str(folder / "registers.csv"),
                 "--register", str(vehicles), "--register", str(medical)]
    reg_s, reg_mb = run_cli(with_args)
    assert (folder / "registers.csv").exists(), "the score run with registers wrote no decisions"
    print(f"{'score + 2 registers (vehicles, 医保)':<52} {reg_s:>8.2f} s {reg_mb:>8.0f} MB", flush=True)
    added = reg_s / plain_s - 1
    print(f"{'added by the registers':<52} {added:>9.1%}   target ≤ {TARGET:.0%}: "
          f"{'yes' if added <= TARGET else 'no'}", flush=True)
    # where the added time goes, in-process
    book = load_rulebook()
    registers = load_registers(Path(book.root) / "registers")
    prepared = prepare(export, book)
    started = time.perf_counter()
    reads = [read_register(vehicles, registers["vehicles"]), read_register(medical, registers["medical_settlements"])]
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    result = apply_registers(prepared.frame, prepared.ids, reads, book, 2020)
    match_s = time.perf_counter() - started
    print(f"{'  read + parse both registers (in-process)':<52} {read_s:>8.2f} s", flush=True)
    print(f"{'  match, window, facts, evidence (in-process)':<52} {match_s:>8.2f} s  "
          f"({len(result.evidence):,} evidence rows, {len(result.unmatched):,} unmatched)", flush=True)


if __name__ == "__main__":
    main()
