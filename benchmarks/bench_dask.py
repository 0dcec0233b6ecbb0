"""A province on a cluster (issue 17): the same partitions scored in one process and on a 2-worker LocalCluster,
and the cost of one partition on Dask. Prints figures measured in one run; not a unit test.

    python benchmarks/bench_dask.py --households 4000000 20000000
    python benchmarks/bench_dask.py --households 4000 --partition 1000 --overhead-partitions 6   # smoke run

Data: one synthetic county of `--partition` households (the project's generator, Chinese headers, its bad cells
and duplicate ids), written as Parquet and copied to as many partitions as needed, each with its own id prefix
(so ids are unique across partitions; the rules see the same mix of households in each). Single process means
exactly what each Dask task runs — the duplicate pass over the ids, then `score_part` (read, `score`, write the
decisions and errors parts) — one partition after the other in this process.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from povertyrules.dask_scoring import Job, id_hashes, ids_with_hashes, input_files, score_on_dask, score_part
from povertyrules.datasets.synth import chinese_headers, synth

SEED = 17


def make_partitions(folder: Path, households: int, partition: int) -> list[Path]:
    """`households` in files of `partition` rows: one generated county, its ids re-prefixed per file."""
    folder.mkdir(parents=True, exist_ok=True)
    base = chinese_headers(synth(partition, seed=SEED, members=False).households).astype("string")
    ids = base.columns[0]
    files = []
    for k in range(-(-households // partition)):
        rows = min(partition, households - k * partition)
        part = base.iloc[:rows].copy()
        part[ids] = f"P{k:04d}" + part[ids].str.slice(3)
        files.append(folder / f"households-{k:05d}.parquet")
        part.to_parquet(files[-1], index=False)
    return files


def single_process(pattern: str, out: Path, job: Job) -> tuple[float, dict[str, int]]:
    """What the Dask tasks do, one after the other in this process: (seconds, accounting)."""
    started = time.perf_counter()
    files = input_files(pattern)
    hashes = [id_hashes(f) for f in files]
    values, seen = np.unique(np.concatenate(hashes), return_counts=True)
    candidates = values[seen > 1]
    found = {i: ids_with_hashes(f, candidates) for i, f in enumerate(files) if np.isin(hashes[i], candidates).any()}
    counts = pd.Series([x for ids in found.values() for x in ids]).value_counts()
    shared = set(counts[counts > 1].index)
    for folder in (out, out.with_name(out.name + ".errors")):
        folder.mkdir(parents=True, exist_ok=True)
    parts = [score_part(i, f, job, [x for x in found.get(i, []) if x in shared], str(out),
                        str(out.with_name(out.name + ".errors"))) for i, f in enumerate(files)]
    seconds = time.perf_counter() - started
    return seconds, {"input_rows": sum(p.input_rows for p in parts), "decided": sum(p.decided for p in parts),
                     "error_rows": sum(p.error_rows for p in parts)}


def reporter(started: float):
    def report(done: int, total: int) -> None:
        print(f"    {done}/{total} partitions at {time.perf_counter() - started:.0f} s", flush=True)
    return report


def size_of(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, nargs="*", default=[4_000_000, 20_000_000],
                        help="sizes to measure (none: only the per-partition overhead)")
    parser.add_argument("--partition", type=int, default=1_000_000, help="households per partition (file)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overhead-partitions", type=int, default=100,
                        help="tiny partitions (500 households each) for the per-partition overhead")
    parser.add_argument("--single-up-to", type=int, default=None,
                        help="run the single process only up to this many households (larger: the per-partition "
                             "time measured at the last size, times the partitions)")
    parser.add_argument("--verbose", action="store_true", help="print each partition as Dask finishes it")
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    import povertyrules

    work = args.folder or Path(tempfile.mkdtemp(prefix="bench-dask-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"povertyrules {povertyrules.__version__}, dask workers {args.workers} × 1 thread (processes)")
    job = Job()
    started = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    client.run(lambda: job.book() and None)  # each worker loads the rules once, as a long-lived cluster has
    print(f"LocalCluster start-up (and rules loaded on each worker): {time.perf_counter() - started:.1f} s")
    large = None  # (seconds per partition in one process, households per partition) of the last size
    try:
        for households in args.households:
            folder = work / f"in-{households}"
            started = time.perf_counter()
            make_partitions(folder, households, args.partition)
            print(flush=True)
            print(f"{households:,} households in {len(list(folder.glob('*.parquet')))} partitions of "
                  f"{args.partition:,}: generated in {time.perf_counter() - started:.0f} s, "
                  f"{size_of(folder):,.1f} MB of Parquet")
            pattern = f"{folder}/*.parquet"
            if args.single_up_to is None or households <= args.single_up_to:
                one, one_counts = single_process(pattern, work / f"single-{households}", job)
                shutil.rmtree(work / f"single-{households}", ignore_errors=True)
                shutil.rmtree(work / f"single-{households}.errors", ignore_errors=True)
                print(f"  single process:        {one:8.1f} s  {households / one:10,.0f} households/s")
                large = (one / len(input_files(pattern)), args.partition)
            elif large:  # partitions are scored independently: one process takes the sum of its partitions
                one, one_counts = large[0] * len(input_files(pattern)), None
                print(f"  single process:        {one:8.1f} s  {households / one:10,.0f} households/s  (not run: "
                      f"{len(input_files(pattern))} × the measured {large[0]:.1f} s per partition)")
            else:
                one, one_counts = float("nan"), None
                print("  single process: not run (--single-up-to)")
            started = time.perf_counter()
            run = score_on_dask(pattern, work / f"dask-{households}", job, client=client,
                                progress=reporter(started) if args.verbose else None)
            dask = time.perf_counter() - started
            print(f"  Dask, {args.workers} workers:        {dask:8.1f} s  {households / dask:10,.0f} households/s"
                  f"  → speed-up {one / dask:.2f}× ({one / dask / args.workers:.0%} of {args.workers}×)")
            same = "the same in both" if run.accounting() == one_counts else "DIFFERENT" if one_counts else ""
            print(f"  totals {run.accounting()} {same}; decisions written:"
                  f" {size_of(work / f'dask-{households}'):,.1f} MB")
            shutil.rmtree(work / f"dask-{households}", ignore_errors=True)
            shutil.rmtree(work / f"dask-{households}.errors", ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)

        n = args.overhead_partitions
        folder = work / "tiny"
        make_partitions(folder, 500 * n, 500)
        pattern = f"{folder}/*.parquet"
        one, _ = single_process(pattern, work / "tiny-single", job)
        started = time.perf_counter()
        score_on_dask(pattern, work / "tiny-dask", job, client=client)
        dask = time.perf_counter() - started
        overhead = (dask * args.workers - one) / n
        print(f"\nper-partition overhead ({n} partitions of 500 households): one process {one / n * 1000:.0f} ms "
              f"per partition; Dask {dask:.1f} s wall = {dask * args.workers / n * 1000:.0f} ms of worker time per "
              f"partition → overhead ≈ {overhead * 1000:.0f} ms per partition (worker time beyond the task's own)")
        if large:
            seconds, size = large
            print(f"  a partition of {size:,} households takes {seconds:.1f} s in one process: the overhead is "
                  f"{overhead / seconds:.2%} of it")
    finally:
        client.close()
        cluster.close()
        if args.folder is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
