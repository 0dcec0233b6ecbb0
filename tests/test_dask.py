"""Scoring on Dask gives exactly what one process gives: a small county in partitions on a 2-worker LocalCluster,
compared row for row (decisions and errors) with one `score` call over all the partitions as one file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from povertyrules import score
from povertyrules.cli.main import app
from povertyrules.dask_scoring import Job, _arrow, score_on_dask
from povertyrules.datasets.synth import synth, write_county
from povertyrules.io.tables import read_table
from povertyrules.model.columns import ERROR_COLUMNS

from .test_setup import run_without

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as connected:
        yield connected


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    """Four partitions of a synthetic county: bad cells and duplicates inside files (from the generator), an id
    in three partitions, and one partition whose every row is an error."""
    folder = tmp_path_factory.mktemp("county")
    [whole] = write_county(synth(2400, seed=17, members=False, bad_rate=0.01), folder / "whole.parquet")
    frame = read_table(whole)
    parts = [frame.iloc[:900].copy(), frame.iloc[900:1700].copy(), frame.iloc[1700:].copy(), frame.iloc[:3].copy()]
    shared = parts[0].iloc[10, 0]
    parts[1].iloc[20, 0] = shared
    parts[2].iloc[30, 0] = shared
    parts[3].iloc[:, 0] = "  "  # blank ids: every row of this partition is an error
    files = []
    for i, part in enumerate(parts):
        files.append(folder / "parts" / f"households-{i}.parquet")
        files[-1].parent.mkdir(exist_ok=True)
        part.to_parquet(files[-1], index=False)
    return folder / "parts", files, parts, shared


def single_process(files, parts):
    """One `score` over the partitions as one file, its rows named back by (file, row)."""
    result = score(pd.concat(parts, ignore_index=True), file="<all>")
    sizes = np.cumsum([0, *(len(p) for p in parts)])

    def name(frame: pd.DataFrame) -> pd.DataFrame:
        position = frame["row"].to_numpy().astype(int) - 2
        which = np.searchsorted(sizes, position, side="right") - 1
        return frame.assign(row=position - sizes[which] + 2, file=[str(files[i]) for i in which])

    return result, name(result.decisions), name(result.errors)


def ordered(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return _arrow(frame, integers=("row",)).to_pandas().sort_values(keys, ignore_index=True)


def test_dask_gives_the_single_process_decisions_and_errors_row_for_row(client, county, tmp_path):
    folder, files, parts, shared = county
    run = score_on_dask(f"{folder}/*.parquet", tmp_path / "decisions", Job(), client=client)
    reference, decisions, errors = single_process(files, parts)

    got = ordered(pq.read_table(tmp_path / "decisions").to_pandas(), ["file", "row"])
    pd.testing.assert_frame_equal(got, ordered(decisions, ["file", "row"]))
    keys = ["file", "row", "column", "error"]
    got_errors = ordered(pq.read_table(tmp_path / "decisions.errors").to_pandas(), keys)
    pd.testing.assert_frame_equal(got_errors[list(ERROR_COLUMNS)], ordered(errors, keys)[list(ERROR_COLUMNS)])

    duplicated = got_errors[got_errors["household_id"] == shared]
    assert set(duplicated["file"]) == set(map(str, files[:3])) and shared not in set(got["household_id"])
    assert (got_errors["file"] == str(files[3])).sum() == len(parts[3])  # every error row is kept
    assert run.accounting() == reference.accounting() == {
        "input_rows": 2403, "decided": len(got), "error_rows": got_errors[["file", "row"]].drop_duplicates().shape[0]}
    pd.testing.assert_frame_equal(run.summary().sort_values(["decision", "status"], ignore_index=True),
                                  reference.summary().sort_values(["decision", "status"], ignore_index=True))


def test_the_command_prints_totals_that_add_up_and_stores_through_the_workers(client, county, tmp_path, db):
    folder, files, parts, _ = county
    address = client.scheduler.address
    result = CliRunner().invoke(app, ["score", f"{folder}/*.parquet", "-o", str(tmp_path / "out"), "--dask",
                                      "--scheduler", address, "--store", "--db", db])
    assert result.exit_code == 0, result.output
    reference, decisions, errors = single_process(files, parts)
    counts = reference.accounting()
    assert (f"input rows {counts['input_rows']} = decided {counts['decided']} + rows with errors "
            f"{counts['error_rows']}") in result.output
    run_id = int(result.stdout.strip().splitlines()[-1])

    from povertyrules.store.database import connect
    from povertyrules.store.runs import decisions_frame, get_run

    engine = connect(db)
    stored = decisions_frame(engine, run_id).sort_values("household_id", ignore_index=True)
    expected = decisions.sort_values("household_id", ignore_index=True)
    assert list(stored["household_id"]) == list(expected["household_id"])
    for column in ("identification", "exit", "monitoring", "reasons", "row"):
        assert list(stored[column]) == list(expected[column]), column
    run = get_run(engine, run_id)
    assert (run.input_rows, run.decided, run.error_rows) == (counts["input_rows"], counts["decided"],
                                                             counts["error_rows"])
    with engine.connect() as connection:
        from sqlalchemy import text

        lines = connection.execute(text("SELECT count(*) FROM runerror WHERE run_id = :r"), {"r": run_id}).scalar()
        reasons = connection.execute(text("SELECT count(DISTINCT household_id) FROM reason WHERE run_id = :r"),
                                     {"r": run_id}).scalar()
    assert lines == len(errors) and reasons == counts["decided"]
    explained = CliRunner().invoke(app, ["explain", expected["household_id"].iloc[0], "--db", db])
    assert explained.exit_code == 0 and "ID-3" in explained.output


def test_scoring_on_dask_without_the_extra_names_it_in_one_line(county, tmp_path):
    folder = county[0]
    done = run_without(["distributed"], "score", f"{folder}/*.parquet", "-o", str(tmp_path / "o"), "--dask")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "povertyrules[dask]" in lines[0], done.stderr


def test_a_pattern_that_names_no_file_is_a_message(tmp_path):
    result = CliRunner().invoke(app, ["score", str(tmp_path / "none" / "*.parquet"), "-o", str(tmp_path / "o"),
                                      "--dask"])
    assert result.exit_code == 2 and "no input file matches" in result.output


def test_the_dask_benchmark_prints_both_throughputs_and_the_overhead():
    from .test_benchmarks import run

    out = run("bench_dask.py", "--households", "3000", "--partition", "1000", "--overhead-partitions", "4")
    assert "single process:" in out and "Dask, 2 workers:" in out and "speed-up" in out
    assert "the same in both" in out and "overhead ≈" in out
