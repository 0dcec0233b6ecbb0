"""Tamper evidence for the audit store: each run's rows are digested and the digests chained run to run.

When a run is stored, every row it owns — the run's own record and the rows of every table with a ``run_id``
column (decisions, reasons, errors, and whatever a later schema adds) — is read back inside the same
transaction and hashed: one short hash per row (in id order) to find a changed row later, a SHA-256 over
them per table, and the run's digest over the run record, those table digests and **the previous run's
digest**. Changing, deleting, replacing or re-inserting any stored row, or dropping a table and letting it be
re-created, therefore breaks the chain at that run.

- `quick_check` (run by every read command): the append-only triggers are in place, every run has a digest,
  the chain of run digests recomputes from the stored summaries, and each table holds as many rows per run as
  were stored. Cheap: no row is read.
- `verify` (``povertyrules store verify``): all of the above, then every row of every run is re-hashed and the
  first run, table and row that no longer match are named.

The chain shows tampering by anyone who does not also rewrite every later digest consistently; print
`head` (shown after each stored run) and keep it outside the database to rule that out too.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import Column, Engine, Table, Text, func, select, text
from sqlmodel import Field, Session, SQLModel

ROW_HASH_BYTES = 8
CHUNK = 20_000


class RunDigest(SQLModel, table=True):
    """The digest of one stored run, chained to the previous run's (append-only like every audit table)."""

    run_id: int = Field(primary_key=True, foreign_key="run.id")
    previous: str  # the previous run's digest ('' for the first run of the store)
    digest: str
    #: per table: {"count": rows, "sha256": digest of the row hashes}
    tables: str = Field(sa_column=Column(Text, nullable=False))
    #: per table: the short hash of each row in id order (base64), to name the first changed row
    row_hashes: str = Field(sa_column=Column(Text, nullable=False))
    sealed_at: dt.datetime


@dataclass
class Report:
    """What a check found; `ok` when nothing."""

    problems: list[str] = field(default_factory=list)
    runs: int = 0
    head: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def run_tables() -> list[Table]:
    """Every table whose rows belong to a run (it has a ``run_id`` column), the digest table aside."""
    return [t for t in SQLModel.metadata.sorted_tables if "run_id" in t.c and t.name != RunDigest.__tablename__]


def _canonical(row) -> bytes:
    values = []
    for value in row:
        if isinstance(value, dt.datetime):
            value = (value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value).isoformat()
        elif isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, bool) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**53):
            value = int(value)
        values.append(value)
    return repr(values).encode()


def _row_hash(row) -> bytes:
    return hashlib.blake2b(_canonical(row), digest_size=ROW_HASH_BYTES).digest()


def _run_record(connection, run_id: int) -> bytes:
    run = SQLModel.metadata.tables["run"]
    row = connection.execute(select(run).where(run.c.id == run_id)).first()
    return b"" if row is None else _canonical(tuple(row))


def _table_rows(connection, table: Table, run_id: int):
    query = select(table).where(table.c.run_id == run_id).order_by(table.c.id)
    result = connection.execute(query.execution_options(stream_results=True))  # this statement only
    while rows := result.fetchmany(CHUNK):
        yield from rows


def _hash_rows(connection, table: Table, run_id: int) -> tuple[int, bytes]:
    hashes = bytearray()
    count = 0
    for row in _table_rows(connection, table, run_id):
        hashes += _row_hash(tuple(row))
        count += 1
    return count, bytes(hashes)


def _digest(previous: str, record: bytes, tables: dict[str, dict]) -> str:
    blob = previous.encode() + b"\n" + record + b"\n" + json.dumps(tables, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def seal(connection, run_id: int) -> str:
    """Digest run `run_id` (inside the transaction that stored it) and chain it; returns its digest.

    The caller holds the store's write lock (SQLite) or `lock` (PostgreSQL), so no other run is sealed
    between reading the previous digest and writing this one.
    """
    digests = RunDigest.__table__
    previous = connection.execute(select(digests.c.digest).where(digests.c.run_id < run_id)
                                  .order_by(digests.c.run_id.desc()).limit(1)).scalar() or ""
    tables, hashes = {}, {}
    for table in run_tables():
        count, row_hashes = _hash_rows(connection, table, run_id)
        tables[table.name] = {"count": count, "sha256": hashlib.sha256(row_hashes).hexdigest()}
        hashes[table.name] = base64.b64encode(row_hashes).decode()
    digest = _digest(previous, _run_record(connection, run_id), tables)
    connection.execute(digests.insert().values(run_id=run_id, previous=previous, digest=digest,
                                               tables=json.dumps(tables), row_hashes=json.dumps(hashes),
                                               sealed_at=dt.datetime.now(dt.UTC)))
    return digest


def lock(connection) -> None:
    """Serialise run writers on PostgreSQL (SQLite serialises writers itself)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7215092)"))


def _triggers_missing(connection) -> list[str]:
    from povertyrules.store.models import APPEND_ONLY

    if connection.dialect.name == "sqlite":
        found = set(connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
        wanted = {f"{t}_no_{a}" for t in APPEND_ONLY for a in ("update", "delete")}
    else:
        found = set(connection.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
        wanted = {f"{t}_{s}" for t in APPEND_ONLY for s in ("append_only", "no_truncate")}
    return sorted(wanted - found)


def quick_check(engine: Engine) -> Report:
    """Triggers, the chain of run digests and the row counts per run (no row is read)."""
    report = Report()
    with Session(engine) as session:
        connection = session.connection()
        missing = _triggers_missing(connection)
        if missing:
            report.problems.append(f"append-only triggers missing: {', '.join(missing)} / 防篡改触发器缺失")
        run = SQLModel.metadata.tables["run"]
        run_ids = list(connection.execute(select(run.c.id).order_by(run.c.id)).scalars())
        sealed = {d.run_id: d for d in session.execute(select(RunDigest).order_by(RunDigest.run_id)).scalars()}
        counts = {t.name: dict(connection.execute(select(t.c.run_id, func.count()).group_by(t.c.run_id)).all())
                  for t in run_tables()}
        report.runs = len(run_ids)
        genesis = next((r for r, d in sealed.items() if d.previous == ""), None)
        previous = None
        for run_id in run_ids:
            digest = sealed.get(run_id)
            if digest is None:
                if genesis is None or run_id > genesis:
                    report.problems.append(f"run {run_id}: no digest (deleted, or the digest table was re-created)"
                                           " / 运行缺少校验值")
                    break
                continue  # stored before this store kept digests
            if (previous is not None and digest.previous != previous) or (previous is None and digest.previous != ""):
                report.problems.append(f"run {run_id}: the chain is broken (the previous run's digest does not "
                                       "match) / 校验链断裂")
                break
            tables = json.loads(digest.tables)
            if _digest(digest.previous, _run_record(connection, run_id), tables) != digest.digest:
                report.problems.append(f"run {run_id}: its record (operator, input file, sha256, counts, rules) "
                                       "no longer matches its digest / 运行记录被改动")
                break
            short = [f"{name} has {counts.get(name, {}).get(run_id, 0)} rows, {t['count']} were stored"
                     for name, t in tables.items() if counts.get(name, {}).get(run_id, 0) != t["count"]]
            if short:
                report.problems.append(f"run {run_id}: {'; '.join(short)} / 行数不符")
                break
            previous = digest.digest
        extra = sorted(set(sealed) - set(run_ids))
        if extra and not report.problems:
            report.problems.append(f"run {extra[0]}: its digest exists but the run does not / 运行记录缺失")
        report.head = previous or ""
    return report


def verify(engine: Engine) -> Report:
    """`quick_check`, then every row re-hashed: names the first run, table and row that no longer match."""
    report = quick_check(engine)
    with Session(engine) as session:
        connection = session.connection()
        for digest in session.execute(select(RunDigest).order_by(RunDigest.run_id)).scalars():
            stored = json.loads(digest.row_hashes)
            for table in run_tables():
                if table.name not in stored:
                    continue
                expected = base64.b64decode(stored[table.name])
                problem = _first_difference(connection, table, digest.run_id, expected)
                if problem:
                    report.problems.append(problem)
                    return report
    return report


def _first_difference(connection, table: Table, run_id: int, expected: bytes) -> str | None:
    size = ROW_HASH_BYTES
    position = -1
    for position, row in enumerate(_table_rows(connection, table, run_id)):
        if expected[position * size:(position + 1) * size] != _row_hash(tuple(row)):
            who = f", household {row.household_id}" if "household_id" in row._fields else ""
            what = ("was changed or replaced, or a row before it deleted" if position * size < len(expected)
                    else "was added")
            return (f"run {run_id}, table {table.name}: row {position + 1} of the run (id {row.id}{who}) {what} "
                    "/ 数据行被改动")
    if (position + 1) * size < len(expected):
        return (f"run {run_id}, table {table.name}: {len(expected) // size - position - 1} row(s) after row "
                f"{position + 1} were deleted / 数据行被删除")
    return None


def check_household(engine: Engine, household_id: str, quick: Report | None = None) -> Report:
    """`quick_check` (or the `quick` report already made), plus the rows of one household re-hashed in every
    run (what explain and the household page show): cheap, and it catches an edited row of the household
    being looked at. Only the runs the household is in have their row hashes read."""
    from povertyrules.store.database import stored_form

    report = quick if quick is not None else quick_check(engine)
    if not report.ok:
        return report
    report = Report(list(report.problems), report.runs, report.head)
    household_id = stored_form(engine, household_id)
    with Session(engine) as session:
        connection = session.connection()
        tables = [t for t in run_tables() if "household_id" in t.c]
        found = {t.name: connection.execute(select(t).where(t.c.household_id == household_id)
                                            .order_by(t.c.run_id, t.c.id)).all() for t in tables}
        runs = sorted({row.run_id for rows in found.values() for row in rows})
        sealed = {d.run_id: json.loads(d.row_hashes) for d in session.execute(
            select(RunDigest).where(RunDigest.run_id.in_(runs))).scalars()} if runs else {}
        for table in tables:
            rows = found[table.name]
            previous: tuple[int, int, int] | None = None  # run, id, position
            for row in rows:
                if row.run_id not in sealed or table.name not in sealed[row.run_id]:
                    continue
                if previous and previous[0] == row.run_id:
                    between = connection.execute(select(func.count()).where(
                        table.c.run_id == row.run_id, table.c.id > previous[1], table.c.id < row.id)).scalar()
                    position = previous[2] + 1 + between
                else:
                    position = connection.execute(select(func.count()).where(
                        table.c.run_id == row.run_id, table.c.id < row.id)).scalar()
                previous = (row.run_id, row.id, position)
                expected = base64.b64decode(sealed[row.run_id][table.name])
                stored = expected[position * ROW_HASH_BYTES:(position + 1) * ROW_HASH_BYTES]
                if stored != _row_hash(tuple(row)):
                    report.problems.append(f"run {row.run_id}, table {table.name}: row {position + 1} of the run "
                                           f"(id {row.id}, this household) no longer matches / 数据行被改动")
                    return report
    return report
