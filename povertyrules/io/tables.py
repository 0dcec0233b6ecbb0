"""Reading and writing tables: .csv, .xlsx/.xls/.ods (read with calamine) and .parquet.

Cells are read as text so the contract's own parsing decides what is valid; nothing is coerced silently.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from python_calamine import CalamineWorkbook

from povertyrules.errors import InputError

SPREADSHEETS = {".xlsx", ".xlsm", ".xls", ".ods"}
MEMBER_SHEETS = ("members", "家庭成员", "成员")


def read_table(path: Path | str, sheet: str | int = 0) -> pd.DataFrame:
    """One table as a frame of text cells (blank cells are missing)."""
    path = Path(path)
    if not path.exists():
        raise InputError("文件不存在", "file not found", file=str(path))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    if suffix == ".parquet":
        return pd.read_parquet(path).astype("string")
    if suffix in SPREADSHEETS:
        return _read_sheet(path, sheet)
    raise InputError("不支持的文件格式（csv/xlsx/parquet）", f"unsupported file type '{suffix}' (csv/xlsx/parquet)",
                     file=str(path))


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


def write_table(frame: pd.DataFrame, path: Path | str, sheet: str = "Sheet1",
                sheets: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write `frame` by the file's suffix; for xlsx it goes to `sheet`, and `sheets` adds further ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with open(path, "wb") as sink:
            sink.write("\ufeff".encode())  # a BOM, so Excel shows Chinese text correctly
            pacsv.write_csv(table, sink)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".xlsx":
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            frame.to_excel(writer, index=False, sheet_name=sheet)
            for name, extra in (sheets or {}).items():
                extra.to_excel(writer, index=False, sheet_name=name)
    else:
        raise InputError("不支持的输出格式（csv/xlsx/parquet）", f"unsupported output type '{suffix}'", file=str(path))
    return path
