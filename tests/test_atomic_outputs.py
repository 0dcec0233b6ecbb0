"""Outputs are written atomically: a killed or failed `score` leaves no partial decisions file."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.io.tables import TableWriter, read_table, write_table

from .conftest import SAMPLE

runner = CliRunner()

KILL_AFTER_FIRST_CHUNK = """
import os, signal, sys
import povertyrules.io.tables as tables
original = tables.TableWriter.write
def write_then_die(self, frame):
    original(self, frame)
    self._sink and self._sink.flush()
    os.kill(os.getpid(), signal.SIGKILL)   # killed at a chunk boundary, as an operator's kill -9 would
tables.TableWriter.write = write_then_die
import povertyrules.scoring as scoring
real = scoring.score
scoring.score = lambda *a, **k: real(*a, **{**k, "chunk_size": 500})
from povertyrules.cli.main import app
app(sys.argv[1:])
"""


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_killed_score_leaves_no_decisions_file(tmp_path, suffix):
    out = tmp_path / f"decisions{suffix}"
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHUNK, "score", str(SAMPLE), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(name.startswith(".decisions.") for name in leftovers), leftovers  # only the hidden partial


def test_a_failed_score_keeps_the_previous_complete_file(tmp_path, monkeypatch):
    out = tmp_path / "decisions.csv"
    first = runner.invoke(app, ["score", str(SAMPLE), "-o", str(out)])
    assert first.exit_code == 0, first.output
    before = out.read_bytes()
    import povertyrules.scoring as scoring

    real = scoring.score

    def fail_midway(*args, **kwargs):
        sink = kwargs["sink"]
        result = real(*args, **{**kwargs, "chunk_size": 500, "sink": None})
        sink(result.decisions.iloc[:500])
        raise MemoryError("out of memory half way")

    monkeypatch.setattr(scoring, "score", fail_midway)
    failed = runner.invoke(app, ["score", str(SAMPLE), "-o", str(out)])
    assert failed.exit_code != 0
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.csv", "decisions.errors.csv"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_writers_produce_the_whole_table_under_the_final_name_only(tmp_path, suffix):
    frame = pd.DataFrame({"household_id": [f"h{i}" for i in range(10)], "note": ["甲"] * 10})
    target = tmp_path / f"t{suffix}"
    with TableWriter(target) as writer:
        writer.write(frame.iloc[:5])
        assert not target.exists()
        writer.write(frame.iloc[5:])
    assert read_table(target)["household_id"].tolist() == frame["household_id"].tolist()
    with pytest.raises(RuntimeError), TableWriter(tmp_path / f"u{suffix}") as writer:
        writer.write(frame)
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    write_table(frame, tmp_path / f"w{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, f"w{suffix}"])


def test_a_failure_in_the_writing_thread_fails_the_run_and_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "decisions.csv"
    assert runner.invoke(app, ["score", str(SAMPLE), "-o", str(out)]).exit_code == 0
    before = out.read_bytes()
    import povertyrules.scoring as scoring

    real_score, real_write, written = scoring.score, TableWriter.write, []

    def write_then_fail(self, frame):
        if written:
            raise OSError("no space left on device")
        written.append(len(frame))
        real_write(self, frame)

    monkeypatch.setattr(scoring, "score", lambda *a, **k: real_score(*a, **{**k, "chunk_size": 500}))
    monkeypatch.setattr(TableWriter, "write", write_then_fail)
    failed = runner.invoke(app, ["score", str(SAMPLE), "-o", str(out)])
    assert failed.exit_code != 0
    assert isinstance(failed.exception, OSError)  # the writing thread's own error, raised in the command
    assert written == [500] and out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.csv", "decisions.errors.csv"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".xlsx"])
def test_decisions_written_by_the_writing_thread_are_those_written_in_line(tmp_path, book, suffix):
    from povertyrules.decisions.files import DecisionWriter
    from povertyrules.scoring import score

    frame = read_table(SAMPLE)
    paths = {}
    for background in (False, True):
        paths[background] = tmp_path / f"{background}{suffix}"
        with DecisionWriter(paths[background], book, "zh", background=background) as writer:
            score(frame, year=2020, rules=book, chunk_size=300, sink=lambda part, _: writer.write(part))
    if suffix == ".xlsx":
        for sheet in ("判定结果", "汇总"):
            pd.testing.assert_frame_equal(read_table(paths[True], sheet), read_table(paths[False], sheet))
    else:
        assert paths[True].read_bytes() == paths[False].read_bytes()
