"""Workbooks the pages offer for download, built in a separate process and streamed from disk.

A stored run never changes, so each workbook is built once per server and kept. The build runs in a worker
process: it does not hold the server's interpreter, so readers of other pages are not stalled while a large
workbook is made, and the file is then sent in chunks (never held in memory as one response).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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

        if not event.contains(engine, "connect", _small_page_cache):  # the engine is shared within the process
            event.listen(engine, "connect", _small_page_cache)
            engine.dispose()
    partial = Path(f"{path}.{os.getpid()}.part.xlsx")
    if kind == "decisions":  # read from the store a block at a time into a streamed workbook
        from povertyrules.decisions.files import XlsxWriter
        from povertyrules.decisions.workbook import BLOCK
        from povertyrules.store.explain import snapshot_rulebook
        from povertyrules.store.runs import DECISION_FIELDS, decision_chunks, get_run

        writer = XlsxWriter(partial, snapshot_rulebook(get_run(engine, run_id)), lang)
        fields = [f for f in DECISION_FIELDS if f not in ("inputs", "run_id")]
        try:
            for chunk in _ahead(decision_chunks(engine, run_id, size=BLOCK, fields=fields)):  # a block at a time
                writer.write(chunk)
        except BaseException:
            writer.abort()  # no partial workbook or spilled sheet left behind
            raise
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


def _small_page_cache(connection, _record) -> None:
    connection.execute("PRAGMA cache_size=-16384")  # 16 MiB


def _ahead(chunks: Iterator, depth: int = 1) -> Iterator:
    """`chunks`, each read by a thread of its own while the one before is written (reading the store and
    building the workbook overlap; at most `depth` chunks wait)."""
    import queue
    import threading

    waiting: queue.Queue = queue.Queue(depth)
    done = object()
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                waiting.put(chunk)
            waiting.put(done)
        except BaseException as error:  # raised in the writing thread
            waiting.put(error)
        finally:  # the store's cursor is closed in the thread that opened it
            getattr(chunks, "close", lambda: None)()

    reader = threading.Thread(target=read, name="export-reader", daemon=True)
    reader.start()
    try:
        while (item := waiting.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue finish
            with contextlib.suppress(queue.Empty):
                waiting.get(timeout=0.1)
        reader.join()


_POOL: ProcessPoolExecutor | None = None
BUILD_NICENESS = 10  # added to the worker's niceness (POSIX scheduling priority; higher yields more)


def pool() -> ProcessPoolExecutor:
    """One worker process for the server's builds (started on the first download), at a lower priority: on a
    busy machine a build takes the CPU the readers of pages leave, not theirs."""
    global _POOL
    if _POOL is None:
        import multiprocessing

        _POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_yield_to_readers)
    return _POOL


def _yield_to_readers() -> None:
    with contextlib.suppress(AttributeError, OSError):  # os.nice is POSIX only
        os.nice(BUILD_NICENESS)
    _end_with_parent()


def _end_with_parent(every: float = 2.0) -> None:
    """End this worker when the server that started it is gone. A worker waits on a pipe whose writing end it
    holds itself, so a server that was killed (not shut down) would otherwise leave it waiting for ever."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
