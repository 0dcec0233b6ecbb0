"""The streamed xlsx writer: files real readers open as written, and exports written a block at a time."""

from __future__ import annotations

import datetime as dt
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from povertyrules import score
from povertyrules.datasets.synth import synth
from povertyrules.decisions import workbook
from povertyrules.decisions.files import XlsxWriter, labels
from povertyrules.decisions.workbook import Workbook
from povertyrules.store.database import connect
from povertyrules.store.runs import record_run

MIXED = pd.DataFrame({
    "text": ["a & b <c>", "  前导空格", "控制\x01字符", None, "普通"],
    "count": [1, 2, 3, 4, -5],
    "amount": [1.5, np.nan, float("inf"), 4000.0, 2928.25],
    "flag": [True, False, None, True, False],
    "day": [dt.date(2020, 1, 2), None, dt.date(2021, 3, 4), dt.date(2022, 1, 1), None],
    "mixed": [1, "甲", 2.5, None, "乙"],
})


def test_a_sheet_reads_back_in_calamine_and_openpyxl_with_its_header_frozen_filtered_and_sized(tmp_path):
    path = tmp_path / "t.xlsx"
    book = Workbook(path)
    sheet = book.add_sheet("判定结果", ["户编号", "人数", "金额", "是否", "日期", "混合"], [12, 5, 8, 4, 10, 30])
    sheet.append(MIXED)
    book.close()

    read = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("判定结果").to_python()
    assert read[0] == ["户编号", "人数", "金额", "是否", "日期", "混合"]
    assert [r[0] for r in read[1:]] == ["a & b <c>", "  前导空格", "控制\x01字符", "", "普通"]  # escaped, kept
    assert [r[1] for r in read[1:]] == [1, 2, 3, 4, -5]
    assert [r[2] for r in read[1:]] == [1.5, "", "", 4000, 2928.25]  # NaN and infinity are blanks
    assert [r[3] for r in read[1:]] == [True, False, "", True, False]
    assert [r[4] for r in read[1:]] == ["2020-01-02", "", "2021-03-04", "2022-01-01", ""]
    assert [r[5] for r in read[1:]] == ["1", "甲", "2.5", "", "乙"]

    opened = openpyxl.load_workbook(path)
    ws = opened["判定结果"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == "A1:F6"
    assert ws["A1"].font.b and ws["A1"].fill.fgColor.rgb == "FFDDEBF7" and not ws["A2"].font.b
    assert ws.column_dimensions["A"].width == pytest.approx(12.71, abs=0.01)  # as Excel stores 12 characters
    assert ws.column_dimensions["F"].width == pytest.approx(30.71, abs=0.01)
    assert ws["B2"].value == 1 and ws["C5"].value == 4000


def test_sheets_written_side_by_side_keep_their_order_and_leave_no_temporary_file(tmp_path):
    path = tmp_path / "two.xlsx"
    book = Workbook(path)
    first, second = book.add_sheet("决定", ["n"]), book.add_sheet("依据", ["n", "m"])
    for k in range(3):  # interleaved, as decisions and their reasons are written chunk by chunk
        first.append(pd.DataFrame({"n": [k]}))
        second.append(pd.DataFrame({"n": [k, k], "m": ["x", "y"]}))
    book.close()
    read = CalamineWorkbook.from_path(str(path))
    assert read.sheet_names == ["决定", "依据"]
    assert read.get_sheet_by_name("决定").to_python() == [["n"], [0], [1], [2]]
    assert read.get_sheet_by_name("依据").to_python()[1:] == [[0, "x"], [0, "y"], [1, "x"], [1, "y"], [2, "x"],
                                                            [2, "y"]]
    assert [p.name for p in tmp_path.iterdir()] == ["two.xlsx"]
    assert zipfile.ZipFile(path).testzip() is None
    with pytest.raises(ValueError, match="already has a sheet"):
        Workbook(tmp_path / "x.xlsx").add_sheet("依据", ["n"]).workbook.add_sheet("依据", ["m"])


def test_a_sheet_past_excels_row_limit_goes_on_in_a_continuation_sheet(tmp_path, monkeypatch):
    monkeypatch.setattr(workbook, "MAX_ROWS", 4)  # a header and 3 rows per sheet
    path = tmp_path / "long.xlsx"
    book = Workbook(path)
    sheet = book.add_sheet("依据", ["n"])
    sheet.append(pd.DataFrame({"n": range(5)}))
    sheet.append(pd.DataFrame({"n": range(5, 8)}))
    book.close()
    read = CalamineWorkbook.from_path(str(path))
    assert read.sheet_names == ["依据", "依据 (2)", "依据 (3)"]
    rows = [r for name in read.sheet_names for r in read.get_sheet_by_name(name).to_python()]
    assert rows == [["n"], [0], [1], [2], ["n"], [3], [4], [5], ["n"], [6], [7]]
    assert openpyxl.load_workbook(path)["依据 (3)"].auto_filter.ref == "A1:A3"


def test_an_aborted_workbook_leaves_nothing(tmp_path, book):
    frame = score(synth(50, seed=3, members=False, bad_rate=0, book=book).households, rules=book).decisions
    target = tmp_path / "d.xlsx"
    writer = XlsxWriter(target, book, "zh")
    writer.write(frame, None)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def blocks(monkeypatch):
    """Small blocks, and every block of rows the writer turns into XML, recorded."""
    monkeypatch.setattr(workbook, "BLOCK", 400)
    sizes: list[int] = []
    real = workbook._rows

    def rows(table, first):
        sizes.append(table.num_rows)
        return real(table, first)

    monkeypatch.setattr(workbook, "_rows", rows)
    return sizes


def test_a_large_web_export_is_read_and_written_a_block_at_a_time(tmp_path, book, blocks, monkeypatch):
    from povertyrules.store import runs
    from povertyrules.web.exports import build

    county = synth(3000, seed=11, members=False, bad_rate=0, book=book)
    db = str(tmp_path / "a.db")
    record_run(connect(db), score(county.households, rules=book, keep_records=True), "c.csv")
    chunks: list[int] = []
    real = runs.decision_chunks

    def counted(*args, **kwargs):
        for chunk in real(*args, **kwargs):
            chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(runs, "decision_chunks", counted)
    out = tmp_path / "decisions.xlsx"
    build(db, 1, "decisions", "zh", "", False, str(out))
    assert max(chunks) == 400 and sum(chunks) == 3000  # the store is read a block at a time
    assert blocks[:len(chunks)] == chunks and max(blocks) <= 400  # each written as it came, then the summary
    decisions = pd.read_excel(out, sheet_name=labels()["decisions_sheet"], engine="calamine", dtype=str)
    assert len(decisions) == 3000
    assert decisions[labels()["columns"]["household_id"]].tolist() == county.households["household_id"].tolist()


def test_a_whole_run_handed_over_at_once_is_still_written_in_blocks(tmp_path, book, blocks):
    result = score(synth(1000, seed=12, members=False, bad_rate=0, book=book).households, rules=book,
                   keep_records=True)
    out = tmp_path / "d.xlsx"
    writer = XlsxWriter(out, book, "en")
    writer.write(result.decisions, result.records)  # as `score --store --reasons full` hands it over
    writer.close()
    assert max(blocks) <= 400 and len(blocks) >= 3 + result.records.num_rows // 400
    read = pd.read_excel(out, sheet_name=None, engine="calamine")
    assert list(read) == ["decisions", "reasons", "summary"]
    assert len(read["decisions"]) == 1000 and len(read["reasons"]) == result.records.num_rows
    total = labels()["summary_sheet"]["total"]["en"]
    assert int(read["summary"].set_index("township").loc[total, "households"]) == 1000


def test_chunks_read_ahead_arrive_in_order_and_a_reading_error_reaches_the_writer():
    from povertyrules.web.exports import _ahead

    closed = []

    def chunks(n: int, fail: bool = False):
        try:
            yield from range(n)
            if fail:
                raise OSError("the store went away")
        finally:
            closed.append(n)

    assert list(_ahead(chunks(50))) == list(range(50))
    with pytest.raises(OSError, match="went away"):
        list(_ahead(chunks(3, fail=True)))
    ahead = _ahead(chunks(1000))
    assert next(ahead) == 0
    ahead.close()  # the writer stops early (an error while writing): the reader stops and closes its cursor
    assert closed == [50, 3, 1000]


def test_workbooks_are_built_in_a_worker_that_yields_the_cpu_to_readers():
    import os

    from povertyrules.web.exports import BUILD_NICENESS, pool

    assert pool().submit(os.nice, 0).result(timeout=120) == min(os.nice(0) + BUILD_NICENESS, 19)


def test_the_build_worker_ends_when_the_server_that_started_it_is_killed():
    import os
    import subprocess
    import sys
    import time

    server = ("import os, sys\n"
              "from povertyrules.web import exports\n"
              "print(exports.pool().submit(os.getpid).result(timeout=120), flush=True)\n"
              "os._exit(0)\n")  # gone without shutting its pool down, as a killed server is
    worker = int(subprocess.run([sys.executable, "-c", server], capture_output=True, text=True, timeout=180,
                                check=True).stdout)
    deadline = time.time() + 30
    while time.time() < deadline and os.path.exists(f"/proc/{worker}"):
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{worker}"), "the build worker outlived its server"


def test_a_web_export_that_fails_half_way_leaves_no_partial_workbook(tmp_path, book, monkeypatch):
    from povertyrules.decisions import files
    from povertyrules.web.exports import build

    monkeypatch.setattr(workbook, "BLOCK", 100)
    db = str(tmp_path / "a.db")
    county = synth(300, seed=13, members=False, bad_rate=0, book=book)
    record_run(connect(db), score(county.households, rules=book, keep_records=True), "c.csv")
    real, calls = files.XlsxWriter.write, []

    def fail_on_the_second(self, frame, records=None):
        calls.append(len(frame))
        if len(calls) == 2:
            raise OSError("disk full")
        real(self, frame, records)

    monkeypatch.setattr(files.XlsxWriter, "write", fail_on_the_second)
    exports = tmp_path / "exports"
    exports.mkdir()
    with pytest.raises(OSError, match="disk full"):
        build(db, 1, "decisions", "zh", "", False, str(exports / "decisions.xlsx"))
    assert list(exports.iterdir()) == []


def test_the_watchlist_and_review_workbooks_are_streamed_with_their_headers_frozen_and_identities_masked(
        tmp_path, blocks):
    from povertyrules.io.tables import write_table

    people = pd.DataFrame({"户编号": [f"H{i:05d}" for i in range(1000)], "身份证号": ["11010119900307123X"] * 1000,
                           "人均纯收入": np.arange(1000) * 1.5})
    scale = pd.DataFrame({"乡镇": ["甲镇"], "户数": [1000]})
    path = write_table(people, tmp_path / "watchlist.xlsx", sheet="监测名单", sheets={"规模": scale})

    assert blocks == [400, 400, 200, 1]  # a block at a time, not one frame in xlsxwriter's memory
    opened = openpyxl.load_workbook(path)
    assert opened.sheetnames == ["监测名单", "规模"]
    assert opened["监测名单"].freeze_panes == "A2" and opened["监测名单"].auto_filter.ref == "A1:C1001"
    read = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("监测名单").to_python()
    assert len(read) == 1001 and read[1][0] == "H00000" and read[-1][2] == 999 * 1.5
    assert {r[1] for r in read[1:]} == {"110101********123X"}  # masked, as every output is
    assert sorted(p.name for p in tmp_path.iterdir()) == ["watchlist.xlsx"]  # no temporary or spill file left


def test_a_served_store_starts_its_workbook_builder_before_the_first_download(tmp_path, book):
    """Starting the builder's interpreter takes a core for about a second; done at start-up, not while readers
    wait on a download."""
    import subprocess
    import sys

    db = str(tmp_path / "a.db")
    record_run(connect(db), score(synth(50, seed=3, members=False, bad_rate=0, book=book).households,
                                  rules=book, keep_records=True), "c.csv")
    check = ("import sys, time\n"
             "from povertyrules.web import exports\n"
             "from povertyrules.web.app import create_app\n"
             f"create_app({db!r})\n"
             "deadline = time.time() + 120\n"
             "while time.time() < deadline and not (exports._POOL and exports._POOL._processes):\n"
             "    time.sleep(0.1)\n"
             "print(bool(exports._POOL and exports._POOL._processes))\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=240)
    assert done.stdout.strip().endswith("True"), done.stdout + done.stderr
