"""Any file a clerk may hand in, as a grid of text cells: the sheet as it is, title rows and all.

The format is taken from the file's content, not its name (a CSV saved as ``.xls`` is read as CSV); CSV text may
be UTF-8 (with or without BOM), GBK / GB18030 (what Chinese Excel saves) or UTF-16; ragged rows are padded. A
number cell too long to be exact (an ID number saved as a number) keeps the scientific form Excel shows, so the
column's parser can say that its digits are lost instead of inventing a different number.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from povertyrules.errors import InputError

#: largest whole number a spreadsheet's floating-point cell holds exactly (15 significant digits)
EXACT_DIGITS = 15
MAX_CELL = 32_767  # Excel's own limit on the characters in a cell


@dataclass
class Grid:
    """A sheet's cells as text (None for blank), with 1-based sheet row numbers and merged ranges."""

    cells: list[list[str | None]]
    rows: list[int]  # sheet row number of each line of `cells`
    merged: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)  # 0-based, inclusive
    file: str = ""
    kind: str = ""  # 'xlsx', 'xls', 'ods', 'csv', 'parquet'
    encoding: str = ""
    sheet: str = ""

    @property
    def width(self) -> int:
        return max((len(r) for r in self.cells), default=0)


def sniff(path: Path) -> str:
    """'xlsx', 'xls', 'ods', 'parquet', 'html' or 'csv', from the first bytes of the file."""
    with open(path, "rb") as handle:
        head = handle.read(2048)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            raise InputError("工作簿已损坏，无法打开", "the workbook is corrupt and cannot be opened",
                             file=str(path)) from None
        if "mimetype" in names and b"opendocument" in head:
            return "ods"
        if any(n.startswith("xl/") for n in names):
            return "xlsx"
        raise InputError("压缩文件不是Excel工作簿", "a zip file that is not an Excel workbook", file=str(path))
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    if head.startswith(b"PAR1"):
        return "parquet"
    lowered = head.lstrip(b"\xef\xbb\xbf \r\n\t").lower()
    if lowered.startswith((b"<html", b"<!doctype", b"<table", b"<?xml")):
        return "html"
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):  # a text table under a workbook's name is read
        try:
            decode(head[:-4] if len(head) == 2048 else head, str(path))  # (a character may straddle the cut)
        except InputError:
            raise InputError(f"文件名是{path.suffix}，但内容不是Excel工作簿，也不是文本表格",
                             f"named {path.suffix} but neither a workbook nor a text table", file=str(path)) from None
    return "csv"


def decode(data: bytes, file: str) -> tuple[str, str]:
    """(text, encoding name) for CSV bytes: BOMs first, then strict UTF-8, then GB18030 (a superset of GBK)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    sample = data[:4096]
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    if (odd and not even) or (even and not odd):  # UTF-16 without a BOM: ASCII characters have a 0 byte
        try:
            return data.decode("utf-16-le" if odd else "utf-16-be"), "utf-16"
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise InputError("无法识别文件编码（应为UTF-8、GBK或UTF-16）",
                     "cannot tell the text encoding (expected UTF-8, GBK or UTF-16)", file=file)


def read_grid(path: Path | str, sheet: str | int = 0, limit: int | None = None) -> Grid:
    """The sheet (or CSV) as a `Grid`; `limit` reads only the first lines (to find the header quickly)."""
    path = Path(path)
    if not path.exists():
        raise InputError("文件不存在", "file not found", file=str(path))
    if path.is_dir():
        raise InputError("这是一个文件夹，不是表格文件", "this is a folder, not a table file", file=str(path))
    kind = sniff(path)
    if kind == "html":
        raise InputError("文件是网页格式（常见于系统导出的“xls”），请在Excel中另存为xlsx后再导入",
                         "the file is a web page (as some systems export '.xls'); save it as .xlsx in Excel first",
                         file=str(path))
    if kind == "parquet":
        frame = pd.read_parquet(path).astype("string")
        cells = [list(frame.columns), *frame.head(limit).astype(object).where(frame.notna(), None).values.tolist()]
        return Grid(cells, list(range(1, len(cells) + 1)), file=str(path), kind=kind)
    if kind == "csv":
        return _csv_grid(path, limit)
    return _workbook_grid(path, sheet, limit, kind)


def _csv_grid(path: Path, limit: int | None) -> Grid:
    data = path.read_bytes() if limit is None else _head_bytes(path)
    if not data.strip():
        raise InputError("文件为空", "the file is empty", file=str(path))
    text, encoding = _decode_head(data, str(path)) if limit is not None else decode(data, str(path))
    if "\x00" in text[:4096]:
        raise InputError("文件不是文本表格（含二进制内容）", "the file is not a text table (binary content)",
                         file=str(path))
    if limit is not None:
        text = text.rsplit("\n", 1)[0] if "\n" in text else text  # drop a line cut in the middle
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    csv.field_size_limit(MAX_CELL * 4)
    cells: list[list[str | None]] = []
    try:
        for line in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            cells.append([_clean(c) for c in line])
            if limit is not None and len(cells) >= limit:
                break
    except csv.Error as exc:
        line = len(cells) + 1
        raise InputError(f"CSV格式错误（第{line}行）：{exc}", f"malformed CSV at line {line}: {exc}",
                         file=str(path)) from None
    return Grid(cells, list(range(1, len(cells) + 1)), file=str(path), kind="csv", encoding=encoding)


def _decode_head(data: bytes, file: str) -> tuple[str, str]:
    """`decode` for the first bytes of a file, which may end inside a character (up to 3 bytes of it)."""
    for cut in range(4):
        try:
            return decode(data[:len(data) - cut] if cut else data, file)
        except (InputError, UnicodeDecodeError):
            if cut == 3 or len(data) <= cut:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _head_bytes(path: Path, size: int = 256 * 1024) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def _clean(cell: str) -> str | None:
    cell = cell.strip()
    return cell[:MAX_CELL] if cell else None


def _workbook_grid(path: Path, sheet: str | int, limit: int | None, kind: str) -> Grid:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        names = book.sheet_names
        if isinstance(sheet, str) and sheet not in names:
            raise InputError(f"工作簿中没有工作表“{sheet}”（有：{'、'.join(names)}）",
                             f"the workbook has no sheet '{sheet}' (it has: {', '.join(names)})", file=str(path))
        if not names:
            raise InputError("工作簿没有工作表", "the workbook has no sheets", file=str(path))
        chosen = book.get_sheet_by_name(sheet) if isinstance(sheet, str) else book.get_sheet_by_index(sheet)
        data = chosen.to_python(skip_empty_area=False, nrows=limit) if limit else \
            chosen.to_python(skip_empty_area=False)
        merged = list(getattr(chosen, "merged_cell_ranges", None) or [])
    except InputError:
        raise
    except Exception as exc:  # calamine raises its own error types for corrupt or mislabelled files
        raise InputError(f"无法读取工作簿（文件损坏或格式与扩展名不符）：{exc}",
                         f"cannot read the workbook (corrupt, or not what its name says): {exc}",
                         file=str(path)) from None
    cells = [[_cell_text(v) for v in row] for row in data]
    return Grid(cells, list(range(1, len(cells) + 1)), merged, file=str(path), kind=kind,
                sheet=chosen.name if hasattr(chosen, "name") else str(sheet))


def _cell_text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 10 ** EXACT_DIGITS:
            return str(int(value))
        if value.is_integer():  # too many digits to be exact: keep the form Excel shows (5.22301199001011E+17)
            return f"{value:.15G}"
        return repr(value)
    text = str(value).strip()
    return text[:MAX_CELL] if text else None


def sheet_names(path: Path | str) -> list[str]:
    path = Path(path)
    if not path.is_file() or sniff(path) not in ("xlsx", "xls", "ods"):
        return []
    from python_calamine import CalamineWorkbook

    try:
        return list(CalamineWorkbook.from_path(str(path)).sheet_names)
    except Exception:  # a corrupt workbook: read_grid reports it
        return []
