"""Connecting to the audit store: a SQLite file by default, PostgreSQL by URL; tables, triggers, bulk writes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import Engine, event, text
from sqlmodel import SQLModel, create_engine

from povertyrules.errors import PovertyRulesError
from povertyrules.store.models import APPEND_ONLY

DEFAULT_DB = "povertyrules.db"
ENV = "POVERTYRULES_DB"


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


def connect(db: str | Path | None = None, must_exist: bool = False) -> Engine:
    """An engine with the tables and append-only triggers in place (created on first use).

    `must_exist` (read-only commands and the web pages): an SQLite file that does not exist is an error naming
    it, never an empty new store."""
    url = database_url(db)
    if must_exist and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise MissingStore(f"审计库文件不存在：{path}（先用 score --store 建立）/ "
                               f"no audit store at {path} (create one with score --store)")
    if url not in _ENGINES:
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        create(engine)
        _ENGINES[url] = engine
    return _ENGINES[url]


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB: bulk index writes stay in memory
    cursor.close()


def create(engine: Engine) -> None:
    """Create missing tables and the triggers that refuse UPDATE and DELETE on every audit table."""
    SQLModel.metadata.create_all(engine)
    with engine.begin() as connection:
        for table in APPEND_ONLY:
            if engine.dialect.name == "sqlite":
                for action in ("UPDATE", "DELETE"):
                    connection.execute(text(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, 'the audit store is append-only: {table}'); END"))
            else:
                connection.execute(text(
                    "CREATE OR REPLACE FUNCTION povertyrules_append_only() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'the audit store is append-only: %', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"))
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
                connection.execute(text(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION povertyrules_append_only()"))


def bulk_insert(connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Insert many rows at once: COPY on PostgreSQL, executemany on SQLite (never one ORM object per row)."""
    names = ", ".join(f'"{c}"' for c in columns)
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    cursor = connection.connection.driver_connection.cursor()
    cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


