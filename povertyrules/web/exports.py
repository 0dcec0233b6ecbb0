"""Workbooks the pages offer for download, built in a separate process and streamed from disk.

A stored run never changes, so each workbook is built once per server and kept. The build runs in a worker
process: it does not hold the server's interpreter, so readers of other pages are not stalled while a large
workbook is made, and the file is then sent in chunks (never held in memory as one response).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def build(db: str, run_id: int, kind: str, lang: str, link: str, show_identities: bool, path: str) -> str:
    """Write one run's workbook (``decisions``, ``watchlist`` or ``review``) to `path` (in a worker process)."""
    from povertyrules.io.tables import write_table
    from povertyrules.privacy import reveal
    from povertyrules.store.database import connect

    reveal(show_identities)  # this worker's outputs are masked as the server's are (`povertyrules.privacy`)
    engine = connect(db, prepare=False, must_exist=True)  # the server prepared the store
    if engine.dialect.name == "sqlite":  # one pass through the store: the writers' large page cache would only grow
        from sqlalchemy import event

        event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA cache_size=-16384"))
        engine.dispose()
    partial = Path(f"{path}.{os.getpid()}.part.xlsx")
    if kind == "decisions":  # read from the store in chunks into a constant-memory workbook
        from povertyrules.decisions.files import XlsxWriter
        from povertyrules.decisions.workbook import BLOCK
        from povertyrules.store.explain import snapshot_rulebook
        from povertyrules.store.runs import DECISION_FIELDS, decision_chunks, get_run

        writer = XlsxWriter(partial, snapshot_rulebook(get_run(engine, run_id)), lang)
        fields = [f for f in DECISION_FIELDS if f not in ("inputs", "run_id")]
        for chunk in decision_chunks(engine, run_id, size=BLOCK, fields=fields):  # one block in memory at a time
            writer.write(chunk)
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
    write_table(first[1], partial, sheet=first[0], sheets=dict(rest))
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
