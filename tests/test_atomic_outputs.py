"""Outputs are written atomically: a killed or failed `score` leaves no partial decisions file."""

from __future__ import annotations

import errno
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
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(frame))
        real_write(self, frame)

    monkeypatch.setattr(scoring, "score", lambda *a, **k: real_score(*a, **{**k, "chunk_size": 500}))
    monkeypatch.setattr(TableWriter, "write", write_then_fail)
    failed = runner.invoke(app, ["score", str(SAMPLE), "-o", str(out)])
    # the writing thread's own error, raised in the command and reported as any write error is
    assert failed.exit_code == 2 and "No space left on device" in failed.output
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


@pytest.mark.parametrize("source", ["roster.csv", "roster.errors.csv"])
def test_scoring_a_file_onto_itself_is_refused_and_the_roster_is_left_as_it_was(tmp_path, source):
    """`-o roster.csv` for roster.csv itself, or for roster.errors.csv (where the errors of OUT go)."""
    roster = tmp_path / "roster.csv"
    read_table(SAMPLE).head(30).to_csv(roster, index=False)
    before = roster.read_bytes()
    (tmp_path / source).write_bytes(before)
    result = runner.invoke(app, ["score", str(tmp_path / source), "-o", str(roster)])
    assert result.exit_code == 2 and "覆盖原表" in result.output and "would overwrite" in result.output
    assert "Traceback" not in result.output
    assert all(p.read_bytes() == before for p in tmp_path.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"roster.csv", source})  # nothing else written


@pytest.mark.parametrize("output", ["folder.xlsx", "a-file.txt/decisions.csv"])
def test_an_output_that_cannot_be_written_is_a_message_not_a_traceback_and_leaves_no_temporary_file(tmp_path,
                                                                                                     output):
    (tmp_path / "folder.xlsx").mkdir()
    (tmp_path / "a-file.txt").write_text("x")
    result = runner.invoke(app, ["score", str(SAMPLE), "-o", str(tmp_path / output)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert ("文件夹" in result.output) if output == "folder.xlsx" else ("无法读写文件" in result.output)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a-file.txt", "folder.xlsx"]


def test_a_file_with_no_year_and_no_year_given_stops_with_one_message_and_writes_nothing(tmp_path):
    roster = tmp_path / "roster.csv"
    read_table(SAMPLE).head(20).drop(columns=["年度"]).to_csv(roster, index=False)
    result = runner.invoke(app, ["score", str(roster), "-o", str(tmp_path / "d.xlsx")])
    assert result.exit_code == 2 and "--year" in result.output and "年度" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roster.csv"]
    given = runner.invoke(app, ["score", str(roster), "-o", str(tmp_path / "d.xlsx"), "--year", "2020"])
    assert given.exit_code == 0 and (tmp_path / "d.xlsx").exists()
