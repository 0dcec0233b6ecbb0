"""A streamed xlsx writer: sheets written block by block into the zip, their cells built by Arrow.

An xlsx file is a zip of XML parts (SpreadsheetML, ECMA-376). A sheet here is one `<row>` per table row with
inline strings, numbers and booleans, a bold header row frozen in place, column widths and a filter over the
written range; the workbook holds the sheets in the order they were added and one header style. Rows are
turned into XML a block at a time with Arrow's vectorised string functions (no Python object per cell) and
the block's bytes go straight into the compressed zip member, so memory holds one block whatever the sheet's
length. The first sheet opened streams into the zip; a sheet written at the same time as it (a second sheet
filled chunk by chunk beside the first) is spilled to a temporary file and copied in when the workbook closes.
A sheet that reaches Excel's row limit goes on in a continuation sheet ``name (2)``, ``name (3)``, … with the
same header.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MAX_ROWS = 1_048_576  # rows of one Excel sheet, the header included
MAX_CELL = 32_767  # characters of one Excel cell
BLOCK = 10_000  # rows turned into XML at a time
HEADER_STYLE = 1  # the cellXfs index of the header's style (bold, filled, bordered)

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"  # not allowed in XML 1.0; Excel writes them as _xHHHH_

class Workbook:
    """An xlsx file written sheet by sheet and block by block (see the module docstring)."""

    def __init__(self, path: Path | str, compresslevel: int = 1):
        self.path = Path(path)
        self.zip = zipfile.ZipFile(self.path, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel)
        self.sheets: list[Sheet] = []
        self.live: Sheet | None = None  # the sheet whose zip member is open
        self.background = _Background()  # compresses and writes blocks while the next one is built
        self._spill: Path | None = None

    def add_sheet(self, name: str, headers: list[str], widths: list[float] | None = None) -> Sheet:
        """A new sheet with a frozen header row (and `widths` in characters, one per column)."""
        sheet = Sheet(self, _sheet_name(name), [str(h) for h in headers], widths, len(self.sheets) + 1)
        if sheet.name.casefold() in {s.name.casefold() for s in self.sheets}:
            raise ValueError(f"the workbook already has a sheet named {sheet.name!r}")
        self.sheets.append(sheet)
        return sheet

    def spill_folder(self) -> Path:
        if self._spill is None:
            self._spill = Path(tempfile.mkdtemp(prefix=".xlsx-", dir=self.path.parent))
        return self._spill

    def close(self) -> None:
        """Finish every sheet and write the workbook's parts."""
        try:
            self.background.wait()
            if self.live is not None:
                self.live.finish()
            for sheet in self.sheets:
                sheet.finish()
            for sheet in self.sheets:
                sheet.copy_spilled()
            self._write_parts()
            self.zip.close()
        finally:
            self.background.stop()
            self._drop_spill()

    def abort(self) -> None:
        """Close what is open and drop the temporary files (the caller removes the half-written file)."""
        with contextlib.suppress(Exception):
            self.background.stop()
        for sheet in self.sheets:
            sheet.drop()
        with contextlib.suppress(Exception):  # the half-written zip is deleted by the caller
            self.zip.close()
        self._drop_spill()

    def _drop_spill(self) -> None:
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill = None

    def _write_parts(self) -> None:
        sheets = "".join(f'<sheet name="{_attribute(s.name)}" sheetId="{s.index}" r:id="rId{s.index}"/>'
                         for s in self.sheets)
        filters = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
            f"{_text(_quoted(s.name))}!$A$1:${_column(len(s.headers) - 1)}${s.rows}</definedName>"
            for i, s in enumerate(self.sheets) if s.headers)
        self.zip.writestr("xl/workbook.xml", (
            f'{_DECLARATION}<workbook xmlns="{_MAIN}" xmlns:r="{_RELS}"><bookViews><workbookView/></bookViews>'
            f"<sheets>{sheets}</sheets>{f'<definedNames>{filters}</definedNames>' if filters else ''}</workbook>"))
        relations = "".join(
            f'<Relationship Id="rId{s.index}" Type="{_RELS}/worksheet" Target="worksheets/sheet{s.index}.xml"/>'
            for s in self.sheets)
        styles = len(self.sheets) + 1
        self.zip.writestr("xl/_rels/workbook.xml.rels", (
            f'{_DECLARATION}<Relationships xmlns="{_PACKAGE}">{relations}'
            f'<Relationship Id="rId{styles}" Type="{_RELS}/styles" Target="styles.xml"/></Relationships>'))
        self.zip.writestr("xl/styles.xml", _STYLES)
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{s.index}.xml" ContentType="application/'
            f'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' for s in self.sheets)
        self.zip.writestr("[Content_Types].xml", (
            f'{_DECLARATION}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            f"{overrides}</Types>"))
        self.zip.writestr("_rels/.rels", (
            f'{_DECLARATION}<Relationships xmlns="{_PACKAGE}"><Relationship Id="rId1" '
            f'Type="{_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'))


class Sheet:
    """One sheet: its header row, then rows appended a table at a time (`append`)."""

    def __init__(self, workbook: Workbook, name: str, headers: list[str], widths: list[float] | None, index: int):
        self.workbook, self.name, self.headers, self.index = workbook, name, headers, index
        self.widths = widths
        self.rows = 0  # rows written so far, the header included
        self.continuation: Sheet | None = None  # where rows go once this sheet is full
        self.blocks = 0  # how many blocks of rows were written (the memory bound: one block at a time)
        self._sink: IO[bytes] | None = None
        self._spilled: Path | None = None
        self._done = False

    def append(self, table: pd.DataFrame | pa.Table) -> None:
        """Write the rows of `table` (its columns in the header's order), a block of rows at a time."""
        if self.continuation is not None:
            self.continuation.append(table)
            return
        if isinstance(table, pd.DataFrame):
            table = _arrow(table)
        if table.num_columns != len(self.headers):
            raise ValueError(f"sheet {self.name}: {table.num_columns} columns for {len(self.headers)} headers")
        self._open()
        start = 0
        while start < table.num_rows:
            room = MAX_ROWS - self.rows
            if room == 0:
                self.continuation = self.workbook.add_sheet(_continued(self.name), self.headers, self.widths)
                self.finish()
                self.continuation.append(table.slice(start))
                return
            block = table.slice(start, min(BLOCK, room, table.num_rows - start))
            self.workbook.background.submit(self._sink.write, _rows(block, self.rows + 1))
            self.rows += block.num_rows
            self.blocks += 1
            start += block.num_rows

    def _open(self) -> None:
        if self._sink is not None or self._done:
            return
        self.workbook.background.wait()
        if self.workbook.live is None:
            self._sink = self.workbook.zip.open(f"xl/worksheets/sheet{self.index}.xml", "w")
            self.workbook.live = self
        else:
            self._spilled = self.workbook.spill_folder() / f"sheet{self.index}.xml"
            self._sink = open(self._spilled, "wb")  # noqa: SIM115 - closed in finish()
        self._sink.write(self._head())
        self.rows = 1

    def _head(self) -> bytes:
        view = ('<sheetView workbookViewId="0"%s><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
                'state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView>'
                % (' tabSelected="1"' if self.index == 1 else ""))
        columns = "".join(f'<col min="{j + 1}" max="{j + 1}" width="{_excel_width(w)}" customWidth="1"/>'
                          for j, w in enumerate(self.widths or []))
        header = "".join(f'<c r="{_column(j)}1" t="inlineStr" s="{HEADER_STYLE}"><is><t>{_text(h)}</t></is></c>'
                         for j, h in enumerate(self.headers))
        return (f'{_DECLARATION}<worksheet xmlns="{_MAIN}" xmlns:r="{_RELS}"><sheetViews>{view}</sheetViews>'
                f'<sheetFormatPr defaultRowHeight="15"/>{f"<cols>{columns}</cols>" if columns else ""}'
                f'<sheetData><row r="1">{header}</row>').encode()

    def finish(self) -> None:
        """Close the sheet's XML (its filter spans the rows written); a sheet never appended to gets its header."""
        if self._done:
            return
        self._open()
        self.workbook.background.wait()
        last = _column(len(self.headers) - 1)
        tail = f'<autoFilter ref="A1:{last}{self.rows}"/>' if self.headers else ""
        self._sink.write(f'</sheetData>{tail}<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" '
                         f'header="0.3" footer="0.3"/></worksheet>'.encode())
        self._sink.close()
        self._sink, self._done = None, True
        if self.workbook.live is self:
            self.workbook.live = None

    def copy_spilled(self) -> None:
        if self._spilled is None:
            return
        with open(self._spilled, "rb") as source, \
                self.workbook.zip.open(f"xl/worksheets/sheet{self.index}.xml", "w") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        self._spilled.unlink()
        self._spilled = None

    def drop(self) -> None:
        if self._sink is not None:
            with contextlib.suppress(Exception):  # aborting: the file is removed anyway
                self._sink.close()
            self._sink = None


class _Background:
    """One thread that runs the blocks' writes in order (zlib and file writes release the GIL, so compressing a
    block overlaps building the next); at most `depth` blocks wait, so memory stays bounded. An error in a write
    is raised by the next `submit` or `wait`."""

    def __init__(self, depth: int = 2):
        self.depth = depth
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def submit(self, write, data) -> None:
        self._raise()
        if self.thread is None:
            self.queue: queue.Queue = queue.Queue(self.depth)
            self.thread = threading.Thread(target=self._run, name="xlsx-writer", daemon=True)
            self.thread.start()
        self.queue.put((write, data))

    def wait(self) -> None:
        """Return when every submitted write is done."""
        if self.thread is not None:
            self.queue.join()
        self._raise()

    def stop(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        self._raise()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                if self.error is None:
                    item[0](item[1])
            except BaseException as error:  # handed to the caller's thread
                self.error = error
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _rows(table: pa.Table, first: int) -> memoryview:
    """The `<row>` elements of `table`, its first row numbered `first`, as one UTF-8 buffer."""
    numbers = pc.cast(pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)), pa.string())
    cells = [_cells(column, _column(j), numbers) for j, column in enumerate(table.columns)]
    return _buffer(pc.binary_join_element_wise('<row r="', numbers, '">', *cells, "</row>", ""))


def _cells(column: pa.ChunkedArray | pa.Array, letter: str, numbers: pa.Array) -> pa.Array:
    """One column's `<c>` elements (an empty string where the value is missing)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = values.type
    if pa.types.is_dictionary(kind):
        values = values.dictionary_decode()
        kind = values.type
    if pa.types.is_null(kind):
        return pa.array([""] * len(values), pa.string())
    if pa.types.is_boolean(kind):
        text = pc.if_else(values, "1", "0")
        parts = [f'<c r="{letter}', numbers, '" t="b"><v>', text, "</v></c>"]
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        if pa.types.is_floating(kind):  # NaN and infinities are blanks
            values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, kind))
        parts = [f'<c r="{letter}', numbers, '"><v>', pc.cast(values, pa.string()), "</v></c>"]
    else:
        text = pc.cast(values, pa.string())  # a block is far below 2 GiB of text
        if (pc.max(pc.binary_length(text)).as_py() or 0) > MAX_CELL:  # bytes ≥ characters: slice only then
            text = pc.utf8_slice_codeunits(text, 0, MAX_CELL)
        text = _escaped(text)
        padded = pc.not_equal(pc.binary_length(pc.utf8_trim_whitespace(text)), pc.binary_length(text))
        space = pc.if_else(padded, ' xml:space="preserve"', "") if _any(padded) else ""
        parts = [f'<c r="{letter}', numbers, '" t="inlineStr"><is><t', space, ">", text, "</t></is></c>"]
    joined = pc.binary_join_element_wise(*parts, "")
    return pc.fill_null(pc.cast(joined, pa.string()), "")


def _escaped(text: pa.Array) -> pa.Array:
    """Text as XML character data; each replacement pass only where the block holds the character (found from
    the bytes: in UTF-8 a byte below 0x80 is always that ASCII character)."""
    data = np.frombuffer(_buffer(text), dtype=np.uint8)
    if not len(data):
        return text
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        if (data == ord(raw)).any():
            text = pc.replace_substring(text, raw, entity)
    if data.min() >= 32 or not _any(pc.match_substring_regex(text, _CONTROL)):  # tab, CR and LF are allowed
        return text
    import re

    pattern = re.compile(_CONTROL)
    return pa.array([None if v is None else pattern.sub(lambda m: f"_x{ord(m.group()):04X}_", v)
                     for v in text.to_pylist()], pa.string())


def _any(flags: pa.Array) -> bool:
    return bool(pc.any(flags).as_py())


def _buffer(strings: pa.Array) -> memoryview:
    """The bytes of a string array's values, end to end (no copy; with no nulls, exactly the values joined)."""
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    _, offsets, data = strings.buffers()
    if data is None or not len(strings):
        return memoryview(b"")
    bounds = np.frombuffer(offsets, dtype=width)[[strings.offset, strings.offset + len(strings)]]
    return memoryview(data)[int(bounds[0]):int(bounds[1])]


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """A DataFrame's columns as Arrow arrays (a column of mixed Python values as text)."""
    arrays = []
    for name in frame.columns:
        series = frame[name]
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arrays.append(pa.array([None if _missing(v) else str(v) for v in series], pa.string()))
    return pa.table(arrays, names=[str(c) for c in range(len(arrays))])


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _column(j: int) -> str:
    """A column letter (0 → A, 26 → AA)."""
    letters = ""
    j += 1
    while j:
        j, rest = divmod(j - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _excel_width(characters: float) -> float:
    """Excel's stored width for a width in characters of the default font (as xlsxwriter computes it)."""
    pixels = int(characters * 12 + 0.5) if characters < 1 else int(characters * 7 + 0.5) + 5
    return (pixels * 256 // 7) / 256.0


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(value: str) -> str:
    return _text(value).replace('"', "&quot;")


def _quoted(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _sheet_name(name: str) -> str:
    """A name Excel accepts: at most 31 characters, none of []:*?/\\."""
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in str(name)).strip("'")[:31]
    return cleaned or "Sheet"


def _continued(name: str) -> str:
    base, _, number = name.rpartition(" (")
    if base and number.endswith(")") and number[:-1].isdigit():
        return f"{base[:25]} ({int(number[:-1]) + 1})"
    return f"{name[:25]} (2)"


_STYLES = (
    f'{_DECLARATION}<styleSheet xmlns="{_MAIN}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/>'
    '</font><font><b/><sz val="11"/><name val="Calibri"/><family val="2"/>'
    '</font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
    '</fill><fill><patternFill patternType="solid"><fgColor rgb="FFDDEBF7"/><bgColor indexed="64"/></patternFill>'
    '</fill></fills>'
    '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border><border>'
    '<left style="thin"><color auto="1"/></left><right style="thin"><color auto="1"/></right>'
    '<top style="thin"><color auto="1"/></top><bottom style="thin"><color auto="1"/></bottom><diagonal/>'
    '</border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1"/>'
    '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')


__all__ = ["BLOCK", "MAX_ROWS", "Sheet", "Workbook"]
