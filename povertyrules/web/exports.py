"""Workbooks the pages offer for download, built in a separate process and streamed from disk.

A stored run never changes, so each workbook is built once per server and kept. The build runs in a worker
process: it does not hold the server's interpreter, so readers of other pages are not stalled while a large
workbook is made, and the file is then sent in chunks (never held in memory as one response).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask(value: Any) -> Any:
    """Mask identity-card numbers (keep 6 + 4) and mobile numbers (keep 3 + 4) in text, lists and dicts."""
    if isinstance(value, str):
        return PHONE.sub(r"\1****\2", ID_NUMBER.sub(r"\1********\2", value))
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def masked_frame(frame: pd.DataFrame, show: bool) -> pd.DataFrame:
    if show:
        return frame
    return frame.apply(lambda column: column.map(mask) if column.dtype == object or
                       pd.api.types.is_string_dtype(column) else column)


def build(db: str, run_id: int, kind: str, lang: str, link: str, show_identities: bool, path: str) -> str:
    """Write one run's workbook (``decisions``, ``watchlist`` or ``review``) to `path` (in a worker process)."""
    from povertyrules.io.tables import write_table
    from povertyrules.store.database import connect

    engine = connect(db, must_exist=True)
    partial = Path(f"{path}.{os.getpid()}.part.xlsx")
    if kind == "decisions":  # read from the store in chunks into a constant-memory workbook
        from povertyrules.decisions.files import XlsxWriter
        from povertyrules.store.explain import snapshot_rulebook
        from povertyrules.store.runs import decision_chunks, get_run

        writer = XlsxWriter(partial, snapshot_rulebook(get_run(engine, run_id)), lang)
        for chunk in decision_chunks(engine, run_id):
            writer.write(masked_frame(chunk.drop(columns=["inputs", "run_id"]), show_identities))
        writer.close()
        partial.rename(path)
        return path
    if kind == "watchlist":
        from povertyrules.store.reports import watchlist

        households, scale = watchlist(engine, run_id)
        sheets = {"data": households, "scale": scale}
    else:
        from povertyrules.store.review import review

        sheets = review(engine, run_id).sheets(lang, link)
    first, *rest = sheets.items()
    write_table(masked_frame(first[1], show_identities), partial, sheet=first[0],
                sheets={k: masked_frame(v, show_identities) for k, v in rest})
    partial.rename(path)
    return path


_POOL: ProcessPoolExecutor | None = None


def pool() -> ProcessPoolExecutor:
    """One worker process for the server's builds (started on the first download)."""
    global _POOL
    if _POOL is None:
        import multiprocessing

        _POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _POOL
