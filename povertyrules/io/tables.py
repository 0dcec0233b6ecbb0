"""Reading and writing tables: .csv, .xlsx/.xls/.ods (read with calamine) and .parquet.

Cells are read as text so the contract's own parsing decides what is valid; nothing is coerced silently.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from python_calamine import CalamineWorkbook

from povertyrules.errors import InputError

SPREADSHEETS = {".xlsx", ".xlsm", ".xls", ".ods"}
MEMBER_SHEETS = ("members", "家庭成员", "成员")


#: characters that end a line for some readers (Python's str.splitlines) but that JSON leaves unescaped
LINE_BREAKING = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(record: object) -> str:
    """One JSON Lines record: a single line for every reader, whatever characters its values hold."""
    return json.dumps(record, ensure_ascii=False, default=str).translate(LINE_BREAKING) + "\n"


def read_table(path: Path | str, sheet: str | int = 0, arrow_text: bool = False) -> pd.DataFrame:
    """One table as a frame of text cells (blank cells are missing). With `arrow_text`, a CSV's cells are the
    Arrow strings as read (``pd.ArrowDtype(pa.string())``, no copy) rather than pandas ``string`` columns."""
    path = Path(path)
    if not path.exists():
        raise InputError("文件不存在", "file not found", file=str(path))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, arrow_text)
    if suffix == ".parquet":
        return pd.read_parquet(path).astype("string")
    if suffix in SPREADSHEETS:
        return _read_sheet(path, sheet)
    raise InputError("不支持的文件格式（csv/xlsx/parquet）", f"unsupported file type '{suffix}' (csv/xlsx/parquet)",
                     file=str(path))


def _read_csv(path: Path, arrow_text: bool = False) -> pd.DataFrame:
    """Every cell as text (Arrow-backed), blank → missing; a UTF-8 BOM is skipped. GBK / UTF-16 text and ragged
    rows, which Arrow does not read, go through the sheet reader (`povertyrules.io.sheets`)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            names = next(csv.reader(handle), [])
        if not names:
            raise InputError("文件为空", "the file is empty", file=str(path))
        types = {name: pa.string() for name in names}
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True))
    except (UnicodeDecodeError, pa.ArrowInvalid, csv.Error):
        from povertyrules.io.sheets import read_grid

        grid = read_grid(path)
        width = grid.width
        header = [*(grid.cells[0] if grid.cells else []), *([None] * width)][:width]
        header = [h if h else f"column{i + 1}" for i, h in enumerate(header)]
        rows = [[*r, *([None] * (width - len(r)))][:width] for r in grid.cells[1:]]
        return pd.DataFrame(rows, columns=header, dtype=object).astype("string")
    if arrow_text:
        return table.to_pandas(types_mapper=lambda t: pd.ArrowDtype(t) if t == pa.string() else None)
    return table.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow") if t == pa.string() else None)


def member_sheet(path: Path | str) -> pd.DataFrame | None:
    """The members sheet of a workbook, if it has one."""
    path = Path(path)
    if path.suffix.lower() not in SPREADSHEETS:
        return None
    names = CalamineWorkbook.from_path(str(path)).sheet_names
    found = next((n for n in names if n.strip().lower() in MEMBER_SHEETS), None)
    return _read_sheet(path, found) if found else None


def _read_sheet(path: Path, sheet: str | int) -> pd.DataFrame:
    book = CalamineWorkbook.from_path(str(path))
    data = (book.get_sheet_by_index(sheet) if isinstance(sheet, int) else book.get_sheet_by_name(sheet)).to_python()
    if not data:
        raise InputError("工作表为空", "the sheet is empty", file=str(path))
    header, rows = [str(h).strip() for h in data[0]], data[1:]
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return frame.map(_cell_text).astype("string")


def _cell_text(value: object) -> object:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _temporary(path: Path) -> Path:
    """A hidden file beside `path` (same folder, so the final rename is atomic), with the same suffix."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")


def _publish(temporary: Path, path: Path) -> None:
    with contextlib.suppress(OSError):  # the data reach the disk before the name does
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    try:
        os.replace(temporary, path)
    except OSError:  # e.g. the name is a folder: nothing half-done is left beside it
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Write to a temporary file beside `path`, renamed to `path` only when the block succeeds: a killed or
    failed write never leaves a partial file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        yield temporary
        _publish(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _masked(frame: pd.DataFrame, mask: bool) -> pd.DataFrame:
    from povertyrules.privacy import mask_frame, revealing

    return mask_frame(frame) if mask and not revealing() else frame


def write_table(frame: pd.DataFrame, path: Path | str, sheet: str = "Sheet1",
                sheets: dict[str, pd.DataFrame] | None = None, mask: bool = True) -> Path:
    """Write `frame` by the file's suffix; for xlsx it goes to `sheet`, and `sheets` adds further ones.
    The file appears complete or not at all (see `atomic_output`). Identity and phone numbers are masked
    (`povertyrules.privacy`) unless `mask` is False (synthetic data) or the operator asked to see them."""
    path = Path(path)
    frame = _masked(frame, mask)
    sheets = {name: _masked(extra, mask) for name, extra in (sheets or {}).items()}
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".xlsx"):
        raise InputError("不支持的输出格式（csv/xlsx/parquet）", f"unsupported output type '{suffix}'", file=str(path))
    with atomic_output(path) as temporary:
        _write_now(frame, temporary, sheet, sheets)
    return path


def _write_now(frame: pd.DataFrame, path: Path, sheet: str, sheets: dict[str, pd.DataFrame] | None) -> None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with open(path, "wb") as sink:
            sink.write("\ufeff".encode())  # a BOM, so Excel shows Chinese text correctly
            pacsv.write_csv(table, sink)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".xlsx":  # streamed a block at a time, header frozen, widths and filters set
        from povertyrules.decisions.files import _width
        from povertyrules.decisions.workbook import Workbook

        book = Workbook(path)
        try:
            for name, table in {sheet: frame, **(sheets or {})}.items():
                written = book.add_sheet(name, list(table.columns), [_width(c, table[c]) for c in table.columns])
                written.append(table)
                written.finish()  # the next sheet streams into the zip too (not spilled beside this one)
        except BaseException:
            book.abort()
            raise
        book.close()


class TableWriter:
    """Write a table in chunks: streamed for .csv and .parquet (one chunk in memory at a time), gathered
    and written at the end for .xlsx. Chunks go to a temporary file beside the target, renamed to it when the
    writer closes without an error; a killed or failed run leaves no partial file under the target's name."""

    def __init__(self, path: Path | str, mask: bool = True):
        self.path, self.mask = Path(path), mask

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in (".csv", ".parquet", ".xlsx"):
            raise InputError("不支持的输出格式（csv/xlsx/parquet）", f"unsupported output type '{self.suffix}'",
                             file=str(self.path))
        self._writer = None
        self._schema: pa.Schema | None = None
        self._chunks: list[pd.DataFrame] = []
        self._sink = None
        self._temporary = _temporary(self.path)

    def write(self, frame: pd.DataFrame) -> None:
        frame = _masked(frame, self.mask)
        if self.suffix == ".xlsx":
            self._chunks.append(frame)
            return
        table = pa.Table.from_pandas(frame, preserve_index=False, schema=self._schema)
        if self._writer is None:
            self._schema = table.schema
            if self.suffix == ".csv":
                self._sink = open(self._temporary, "wb")  # noqa: SIM115 - closed in close()
                self._sink.write("\ufeff".encode())
                self._writer = pacsv.CSVWriter(self._sink, table.schema)
            else:
                self._writer = pq.ParquetWriter(self._temporary, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        """Finish the file and give it its name."""
        if self.suffix == ".xlsx":
            write_table(pd.concat(self._chunks, ignore_index=True) if self._chunks else pd.DataFrame(), self.path,
                        mask=False)  # masked chunk by chunk already
            return
        if self._writer is not None:
            self._close_streams()
            _publish(self._temporary, self.path)

    def abort(self) -> None:
        """Drop what was written: the target is left as it was."""
        self._chunks.clear()
        with contextlib.suppress(Exception):
            self._close_streams()
        self._temporary.unlink(missing_ok=True)

    def _close_streams(self) -> None:
        writer, sink, self._writer, self._sink = self._writer, self._sink, None, None
        try:
            if writer is not None:
                writer.close()
        finally:
            if sink is not None:
                sink.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
