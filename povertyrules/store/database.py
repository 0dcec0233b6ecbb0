"""Connecting to the audit store: a SQLite file by default, PostgreSQL by URL; tables, triggers, bulk writes."""

from __future__ import annotations

import contextlib
import io
import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Column, Engine, Table, event, inspect, text
from sqlalchemy import types as sa_types
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel, create_engine

from povertyrules.errors import PovertyRulesError
from povertyrules.store.models import APPEND_ONLY

DEFAULT_DB = "povertyrules.db"
ENV = "POVERTYRULES_DB"
#: how long a writer waits for another one to finish (SQLite busy timeout), and how often a write that still
#: finds the database locked (or a PostgreSQL serialization failure) is tried again
BUSY_SECONDS = 120
RETRIES = 8
T = TypeVar("T")


def database_url(db: str | Path | None = None) -> str:
    """``--db`` or ``POVERTYRULES_DB``: a path (SQLite) or a ``postgresql://`` / ``sqlite://`` URL."""
    value = str(db or os.environ.get(ENV) or DEFAULT_DB)
    if value.startswith("postgresql://"):
        return "postgresql+psycopg://" + value.removeprefix("postgresql://")
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).resolve()}"


_ENGINES: dict[str, Engine] = {}


class MissingStore(PovertyRulesError):
    """A read-only command was pointed at an SQLite file that does not exist (it is never created for it)."""


def connect(db: str | Path | None = None, prepare: bool = True, must_exist: bool = False) -> Engine:
    """An engine with the tables and append-only triggers in place (created on first use). `prepare=False` for
    writers that join a run another process created (the DDL would lock the tables they write).

    `must_exist` (read-only commands and the web pages): an SQLite file that does not exist is an error naming
    it, never an empty new store."""
    url = database_url(db)
    if must_exist and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise MissingStore(f"审计库文件不存在：{path}（先用 score --store 建立）/ "
                               f"no audit store at {path} (create one with score --store)")
    if url not in _ENGINES:
        sqlite = url.startswith("sqlite")
        # (a pool as large as the web server's worker threads, kept open: readers never queue for a
        # connection, nor open and close one per page)
        engine = create_engine(url, connect_args={"timeout": BUSY_SECONDS} if sqlite else {},
                               pool_size=50 if sqlite else 10, max_overflow=10 if sqlite else 40)
        if sqlite:
            event.listen(engine, "connect", _sqlite_pragmas)
        if prepare:
            retrying(lambda: create(engine))
        _ENGINES[url] = engine
    return _ENGINES[url]


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")  # writers wait for each other
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA recursive_triggers=ON")  # INSERT OR REPLACE's delete meets the DELETE trigger
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB: bulk index writes stay in memory
    cursor.close()


_KEYS: dict[str, bytes] = {}


def stored_form(engine: Engine, text: str) -> str:
    """`text` as this store keeps it: identity numbers as masked form + keyed hash, phones masked
    (`povertyrules.privacy.pseudonym_text`). Apply it to a household id before looking it up."""
    from povertyrules.privacy import pseudonym_text

    return pseudonym_text(text, store_key_of(engine)) if isinstance(text, str) else text


def store_key_of(engine: Engine) -> bytes:
    from povertyrules.privacy import store_key

    url = engine.url.render_as_string(hide_password=True)
    if url not in _KEYS:
        _KEYS[url] = store_key(url)
    return _KEYS[url]


def retrying(write: Callable[[], T], retries: int = RETRIES) -> T:
    """Run a write transaction, again (after a short random wait) when the database is locked or busy."""
    for attempt in range(retries + 1):
        try:
            return write()
        except OperationalError as exc:
            message = str(exc.orig or exc).lower()
            transient = any(m in message for m in ("database is locked", "database is busy", "deadlock detected",
                                                   "could not serialize", "tuple concurrently updated",
                                                   "already exists"))  # two first writers creating the tables
            if not transient or attempt == retries:
                raise
            time.sleep(min(5.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def create(engine: Engine) -> None:
    """Create missing tables, missing indexes (a store made before an index was declared gets it when it is
    next opened) and the triggers that refuse UPDATE and DELETE on every audit table.

    On PostgreSQL an advisory lock makes processes that start at once take turns (CREATE … IF NOT EXISTS and
    CREATE OR REPLACE FUNCTION are not safe to run concurrently there).
    """
    from povertyrules.store import access, integrity  # noqa: F401 - their tables are part of the schema

    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(7215091)"))
            SQLModel.metadata.create_all(connection)
            _add_missing_columns(connection)
            _add_missing_indexes(connection)
            _triggers(connection)
        return
    SQLModel.metadata.create_all(engine)
    _add_missing_columns(engine)
    _add_missing_indexes(engine)
    with engine.begin() as connection:
        _triggers(connection)


def _triggers(connection) -> None:
    """UPDATE, DELETE (and so INSERT OR REPLACE, with recursive triggers on) and TRUNCATE are refused."""
    for table in APPEND_ONLY:
        if connection.dialect.name == "sqlite":
            for action in ("UPDATE", "DELETE"):
                connection.execute(text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'the audit store is append-only: {table}'); END"))
            continue
        connection.execute(text(
            "CREATE OR REPLACE FUNCTION povertyrules_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'the audit store is append-only: %', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"))
        connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
        connection.execute(text(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION povertyrules_append_only()"))
        connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
        connection.execute(text(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION povertyrules_append_only()"))


def _add_missing_columns(bind) -> None:
    """Columns added to a table since a store was created (always nullable), so older stores keep working."""
    found = inspect(bind)
    missing = [(table.name, column) for table in SQLModel.metadata.sorted_tables
               for present in [{c["name"] for c in found.get_columns(table.name)}]
               for column in table.columns if column.name not in present and column.nullable]
    if not missing:
        return
    context = bind.begin() if isinstance(bind, Engine) else contextlib.nullcontext(bind)
    with context as connection:
        for table, column in missing:
            kind = column.type.compile(dialect=connection.dialect)
            connection.execute(text(f'ALTER TABLE {table} ADD COLUMN "{column.name}" {kind}'))


def _add_missing_indexes(bind) -> None:
    """Indexes declared since a store was created (`create_all` makes a table's indexes only with the table).
    Nothing is written when every index is there."""
    found = inspect(bind)
    missing = [index for table in SQLModel.metadata.sorted_tables
               for present in [{i["name"] for i in found.get_indexes(table.name)}]
               for index in sorted(table.indexes, key=lambda i: i.name or "") if index.name not in present]
    if not missing:
        return
    context = bind.begin() if isinstance(bind, Engine) else contextlib.nullcontext(bind)
    with context as connection:
        for index in missing:
            index.create(connection, checkfirst=True)


# -- rows as stored, in Arrow -----------------------------------------------------------------------------

#: the Arrow type a stored column's values have (`column_kind`); other kinds are kept as Python values
ARROW_TYPES = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}
BATCH = 50_000


def column_kind(column: Column) -> str:
    """``bool``, ``int``, ``float``, ``str`` or ``other``: how a column's values are kept (and hashed)."""
    kind = column.type.impl_instance if isinstance(column.type, sa_types.TypeDecorator) else column.type
    for name, types in (("bool", sa_types.Boolean), ("int", sa_types.Integer), ("float", sa_types.Float),
                        ("str", sa_types.String)):
        if isinstance(kind, types):
            return name
    return "other"


def arrow_rows(table: Table, frame: pd.DataFrame, columns: Sequence[str]) -> pa.Table:
    """`frame`'s `columns` converted to the stored types of `table`'s columns, exactly the values the database
    will hold and return (blank and NaN as null; text columns as text), so the rows can be hashed as they are
    written. Raises TypeError for a value the column cannot hold (a fraction in an integer column)."""
    arrays = []
    for name in columns:
        kind, values = column_kind(table.c[name]), frame[name]
        if kind == "other":
            raise TypeError(f"{table.name}.{name}: only bool, integer, float and text columns are written in bulk")
        if kind == "str" and not (pd.api.types.is_string_dtype(values) and values.dtype != object):
            values = values.astype("string")  # (object, category, numbers: as text, as the database would)
        if kind == "float":
            values = values.astype(float)
        array = pa.array(values, from_pandas=True)
        try:
            arrays.append(array.cast(ARROW_TYPES[kind]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TypeError(f"{table.name}.{name}: {exc}") from None
    return pa.Table.from_arrays(arrays, names=list(columns))


def bulk_insert_table(connection, table: str, rows: pa.Table) -> None:
    """Insert an Arrow table's rows: COPY (CSV, written by Arrow) on PostgreSQL, executemany in batches on SQLite."""
    for batch in rows.to_batches(max_chunksize=BATCH):
        insert_bound(connection, bound_rows(connection.dialect.name, table, pa.Table.from_batches([batch])))


def bound_rows(dialect: str, table: str, rows: pa.Table) -> tuple:
    """Rows made ready for `insert_bound` on a database of `dialect` (in any thread: no connection is used).

    PostgreSQL: the COPY statement and the rows as CSV written by Arrow (every text value quoted, a null an
    empty field: exactly what COPY's CSV format reads as text and as NULL). SQLite: the INSERT statement and
    the values each column binds."""
    names = ", ".join(f'"{c}"' for c in rows.column_names)
    if dialect == "postgresql":
        sink = io.BytesIO()
        pa_csv.write_csv(rows, sink, pa_csv.WriteOptions(include_header=False, batch_size=4096))
        return f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)", sink.getbuffer()
    bound = [_bound(column.combine_chunks()) for column in rows.columns]
    marks = ", ".join(mark for mark, _ in bound)
    return f"INSERT INTO {table} ({names}) VALUES ({marks})", [values for _, values in bound]


def insert_bound(connection, bound: tuple) -> None:
    """Write rows made by `bound_rows` in the connection's transaction."""
    statement, data = bound
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(data)
        return
    raw.cursor().executemany(statement, zip(*data, strict=True))


def _bound(column: pa.Array) -> tuple[str, list | np.ndarray]:
    """A column's placeholder and the values SQLite's driver binds for it, made so that binding is cheap: plain
    ``int``, ``float`` and ``str`` objects (any other object, ``None`` too, goes through the driver's adapter
    look-up first, several times slower); a text column repeating a few values (outcomes, places, the rules
    version, judged on its start) as one shared object per distinct value, encoded to UTF-8 once. A blank is
    bound as a value the column cannot hold — ``0`` in a text column, ``''`` in another — that the placeholder
    ``NULLIF(?, …)`` turns back into NULL."""
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if pa.types.is_boolean(column.type):  # (as SQLite keeps them: 0 and 1)
        column = column.cast(pa.int64())
    if text and len(column) and pc.count_distinct(column.slice(0, 2000), mode="all").as_py() * 2 <= min(
            len(column), 2000):
        encoded = column.dictionary_encode()
        values = np.array([*encoded.dictionary.to_pylist(), 0], dtype=object)[
            encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()]
    elif column.null_count == 0 or text:
        values = column.to_numpy(zero_copy_only=False)
        values = values if text else values.tolist()
    else:
        values = np.array(column.to_pylist(), dtype=object)
    if not column.null_count:
        return "?", values
    values[np.asarray(column.is_null())] = 0 if text else ""
    return ("NULLIF(?, 0)" if text else "NULLIF(?, '')"), values


