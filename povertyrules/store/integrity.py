"""Tamper evidence for the audit store: each run's rows are digested and the digests chained run to run.

When a run is stored, every row it owns — the run's own record and the rows of every table with a ``run_id``
column (decisions, errors, register evidence, and whatever a later schema adds) — is hashed inside the same
transaction: one short hash per row (in id order) to find a changed row later, a SHA-256 over them per table,
and the run's digest over the run record, those table digests and **the previous run's digest**. Changing,
deleting, replacing or re-inserting any stored row, or dropping a table and letting it be re-created, therefore
breaks the chain at that run.

How a row is hashed (``"rows": 2`` in the digest's table entry, with the columns hashed, in order): a
fixed-width part — each number as a flag byte and its 8 bytes (int64, or the IEEE-754 float64 with −0 as 0),
each boolean as flag and 0/1, each text as its UTF-8 length in 4 bytes (all ones for a null) — then the UTF-8 of
the texts, hashed with SHA-256 (the first 8 bytes kept; `row_hashes`). The forms are built column by column
in Arrow and numpy, so a run's rows are hashed in bulk from the very values it writes (`seal` with ``written``:
the ids are read back, and a sample of rows re-read and compared); a run written in parts by other processes
is read back whole. Runs sealed before (no ``"rows"``) hashed each row's Python repr; `verify` and
`check_household` check each run by the scheme it was sealed with, and only its recorded columns (a column
added to a table later does not change the hashes of the rows stored before).

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
import functools
import hashlib
import itertools
import json
import random
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Column, Engine, Select, Table, Text, bindparam, func, select, text
from sqlmodel import Field, Session, SQLModel

from povertyrules.store.database import ARROW_TYPES, column_kind

ROW_HASH_BYTES = 8
CHUNK = 20_000
#: how rows are hashed (module docstring); a digest without it was sealed with scheme 1 (each row's repr)
ROW_SCHEME = 2
#: rows re-read from the database and compared when a run is sealed from the values it wrote
SPOT_CHECKS = 32


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


#: columns added to the run table after runs were first sealed: left out of a run's record where blank, so the
#: records (and so the digests) of runs stored before them are unchanged, while a value written into one later
#: changes the record as any other change does
ADDED_RUN_COLUMNS = ("codebook",)


def _run_record(connection, run_id: int) -> bytes:
    run = SQLModel.metadata.tables["run"]
    row = connection.execute(select(run).where(run.c.id == run_id)).first()
    if row is None:
        return b""
    return _canonical(tuple(v for c, v in zip(run.columns, row, strict=True)
                            if not (v is None and c.name in ADDED_RUN_COLUMNS)))


def _table_rows(connection, table: Table, run_id: int):
    query = select(table).where(table.c.run_id == run_id).order_by(table.c.id)
    result = connection.execute(query.execution_options(stream_results=True))  # this statement only
    while rows := result.fetchmany(CHUNK):
        yield from rows


def _hash_rows(connection, table: Table, run_id: int) -> tuple[int, bytes]:
    """Scheme 1 (runs sealed before scheme 2): each row's repr, hashed one by one."""
    hashes = bytearray()
    count = 0
    for row in _table_rows(connection, table, run_id):
        hashes += _row_hash(tuple(row))
        count += 1
    return count, bytes(hashes)


# -- scheme 2: typed canonical forms, hashed in bulk ------------------------------------------------------

def _plain(value) -> str:
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value).isoformat()
    return value.isoformat() if isinstance(value, dt.date) else str(value)


_PYTHON = {"bool": (bool,), "int": (int,), "float": (float, int), "str": (str,)}
_NULL, _FOREIGN = 0xFFFFFFFF, 0xFFFFFFFE  # a text's length field for a null, for a value of another type


def _typed(kind: str, values) -> tuple[pa.Array, np.ndarray | None]:
    """One column's values as an Arrow array of its kind (text for ``other``), and where a value read back is
    of another type (written outside the program; it is left out of the array) or None."""
    if kind == "other":
        return pa.array([None if v is None else _plain(v) for v in values], pa.string()), None
    if isinstance(values, pa.ChunkedArray):  # (one chunk is used as it is: combining copies)
        return (values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()), None
    if isinstance(values, pa.Array):
        return values, None
    try:
        return pa.array(values, type=ARROW_TYPES[kind]), None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        foreign = np.array([not (v is None or (isinstance(v, _PYTHON[kind]) and
                                               (kind == "bool") == isinstance(v, bool))) for v in values])
        kept = [None if bad else v for v, bad in zip(values, foreign, strict=True)]
        return pa.array(kept, type=ARROW_TYPES[kind]), foreign


def _column_form(kind: str, values) -> tuple[np.ndarray, pa.Array | None]:
    """One column's part of the rows' canonical forms: its fixed-width bytes per row (a flag byte and 8 bytes
    for a number, 2 bytes for a boolean, a 4-byte length for a text) and, for text, the text itself."""
    array, foreign = _typed(kind, values)
    count = len(array)
    if kind in ("str", "other"):
        text = array.cast(pa.string())
        lengths = pc.fill_null(pc.binary_length(text), 0).to_numpy().astype("<u4")
        lengths[np.asarray(text.is_null(), dtype=bool)] = _NULL
        if foreign is not None:  # the value's type and repr stand in its place
            lengths[foreign] = _FOREIGN
            texts = text.to_pylist()
            for at in np.flatnonzero(foreign):
                texts[at] = f"{type(values[at]).__name__}{values[at]!r}"
            text = pa.array(texts, pa.string())
        return lengths.view(np.uint8).reshape(count, 4), pc.fill_null(text, "").cast(pa.binary())
    flags = np.asarray(array.is_null(), dtype=np.uint8)
    if foreign is not None:
        flags[foreign] = 2
    if kind == "bool":
        value = np.asarray(pc.fill_null(array, False), dtype=np.uint8)
        return np.column_stack([flags, value]), None
    if kind == "int":
        numbers = pc.fill_null(array, 0).to_numpy().astype("<i8")
    else:
        numbers = (pc.fill_null(array, 0.0).to_numpy().astype(np.float64) + 0.0).astype("<f8")  # (−0 + 0 is +0)
    return np.column_stack([flags, numbers.view(np.uint8).reshape(count, 8)]), None


def row_hashes(kinds: Sequence[str], columns: Sequence) -> bytes:
    """The scheme-2 hash of each row (`ROW_HASH_BYTES` each, concatenated) of columns given as Arrow arrays or
    lists of values, of the kinds `povertyrules.store.database.column_kind` names.

    A row's canonical form is its fixed-width part (per column in order: a number as a flag byte — 0 value,
    1 null, 2 a value of another type — and its 8 bytes, int64 or IEEE-754 float64 little-endian with −0 as 0;
    a boolean as flag and 0/1; a text as its UTF-8 length in 4 bytes, FFFFFFFF for a null), followed by the
    UTF-8 of its text columns in order; its hash is the first bytes of the form's SHA-256."""
    count = len(columns[0]) if columns else 0
    out = bytearray()
    step = CHUNK * 2
    for start in range(0, count, step):
        out += _hash_part(kinds, [c[start:start + step] for c in columns])
    return bytes(out)


def _hash_part(kinds: Sequence[str], columns: Sequence) -> bytes:
    fixed, texts = [], []
    for kind, values in zip(kinds, columns, strict=True):
        head, text = _column_form(kind, values)
        fixed.append(head)
        if text is not None:
            texts.append(text)
    header = np.ascontiguousarray(np.concatenate(fixed, axis=1))
    count, width = header.shape
    heads = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), count, [None, pa.py_buffer(header)])
    try:
        forms = pc.binary_join_element_wise(heads.cast(pa.binary()), *texts, b"")
    except pa.ArrowCapacityError:  # (over 2 GiB of text in this part: halve it)
        half = count // 2
        return (_hash_part(kinds, [c[:half] for c in columns]) + _hash_part(kinds, [c[half:] for c in columns]))
    _validity, offsets, data = forms.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32, count=count + 1, offset=forms.offset * 4).tolist()
    view = memoryview(data)
    digest = hashlib.sha256
    return b"".join([digest(view[a:b]).digest()[:ROW_HASH_BYTES] for a, b in itertools.pairwise(bounds)])


def _kinds(table: Table, columns: Sequence[str]) -> list[str]:
    return [column_kind(table.c[c]) for c in columns]


def _rows_hashes(table: Table, columns: Sequence[str], rows: Sequence[Sequence]) -> bytes:
    """Scheme-2 hashes of rows read from the database (tuples in the order of `columns`)."""
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return row_hashes(_kinds(table, columns), [list(v) for v in values])


def _stored_chunks(connection, table: Table, run_id: int, columns: Sequence[str]) -> Iterator[list]:
    query = select(*(table.c[c] for c in columns)).where(table.c.run_id == run_id).order_by(table.c.id)
    result = connection.execute(query.execution_options(stream_results=True))  # this statement only
    while rows := result.fetchmany(CHUNK):
        yield rows


def _hash_stored(connection, table: Table, run_id: int, columns: Sequence[str]) -> bytes:
    return b"".join(_rows_hashes(table, columns, rows) for rows in _stored_chunks(connection, table, run_id, columns))


def _written_ids(connection, table: Table, run_id: int, count: int) -> np.ndarray | None:
    """The ids the database gave the `count` rows just written for run `run_id`, in the order written (one
    writer, so ascending ids are the order of insertion); None if the table holds another number of them.
    Consecutive ids (the usual case) are known from min, max and count alone."""
    low, high, found = connection.execute(select(func.min(table.c.id), func.max(table.c.id), func.count())
                                          .where(table.c.run_id == run_id)).one()
    if found != count:
        return None
    if not count or high - low + 1 == count:
        return np.arange(low or 0, (low or 0) + count, dtype=np.int64)
    ids = connection.execute(select(table.c.id).where(table.c.run_id == run_id).order_by(table.c.id)).scalars()
    return np.fromiter(ids, dtype=np.int64, count=count)


def next_id(connection, name: str) -> int | None:
    """The id the next row written to table `name` in this transaction gets, where the database tells it
    beforehand: on SQLite one more than the largest (the caller holds the write lock; rows written after it
    get the ids that follow, in order). None on PostgreSQL (ids come from a sequence other writers share)."""
    if connection.dialect.name != "sqlite":
        return None
    table = SQLModel.metadata.tables[name]
    return int(connection.execute(select(func.max(table.c.id))).scalar() or 0) + 1


def part_hashes(name: str, first_id: int, rows: pa.Table) -> bytes:
    """Scheme-2 hashes of rows (every column but ``id``) about to be written to table `name` with the ids
    ``first_id``, ``first_id + 1``, …: handed to `seal`, which uses them only if those are the ids the rows got."""
    table = SQLModel.metadata.tables[name]
    ids = pa.array(np.arange(first_id, first_id + rows.num_rows, dtype=np.int64))
    return row_hashes(_kinds(table, ["id", *rows.column_names]), [ids, *rows.columns])


def _written_hashes(connection, table: Table, run_id: int, rows: pa.Table,
                    made: tuple[int, bytes] | None = None) -> tuple[list[str], bytes] | None:
    """Scheme-2 hashes of the rows a run wrote, from the written values and the ids read back (or `made` on
    the way, by `part_hashes`, when the rows got the ids they were made with); a sample of rows is re-read
    and must hash the same (else None, and the caller reads every row back)."""
    columns = ["id", *rows.column_names]
    if sorted(columns) != sorted(c.name for c in table.columns):
        return None
    ids = _written_ids(connection, table, run_id, rows.num_rows)
    if ids is None:
        return None
    if made is not None and len(ids) and made[0] == ids[0] and ids[-1] - ids[0] + 1 == len(ids) \
            and len(made[1]) == len(ids) * ROW_HASH_BYTES:
        hashes = made[1]
    else:
        hashes = row_hashes(_kinds(table, columns), [pa.array(ids), *rows.columns])
    sample = sorted(set(random.Random(run_id).sample(range(len(ids)), min(SPOT_CHECKS, len(ids)))) |
                    ({0, len(ids) - 1} if len(ids) else set()))
    if sample:
        found = {row[0]: row for row in connection.execute(
            select(*(table.c[c] for c in columns)).where(table.c.id.in_([int(ids[i]) for i in sample])))}
        if len(found) != len(sample):
            return None
        again = _rows_hashes(table, columns, [found[int(ids[i])] for i in sample])
        if again != b"".join(hashes[i * ROW_HASH_BYTES:(i + 1) * ROW_HASH_BYTES] for i in sample):
            return None
    return columns, hashes


def _digest(previous: str, record: bytes, tables: dict[str, dict]) -> str:
    blob = previous.encode() + b"\n" + record + b"\n" + json.dumps(tables, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def seal(connection, run_id: int, written: dict[str, pa.Table] | None = None,
         made: dict[str, tuple[int, bytes]] | None = None) -> str:
    """Digest run `run_id` (inside the transaction that stored it) and chain it; returns its digest.

    `written`: table name -> the rows this transaction wrote for the run (every column but ``id``, as
    `povertyrules.store.database.arrow_rows` made them); those are hashed from the written values, or taken
    from `made` (table name -> first id and the rows' hashes, `part_hashes`) when the rows got those ids. Other
    tables, and a run written in parts by other processes, are read back.

    The caller holds the store's write lock (SQLite) or `lock` (PostgreSQL), so no other run is sealed
    between reading the previous digest and writing this one.
    """
    digests = RunDigest.__table__
    previous = connection.execute(select(digests.c.digest).where(digests.c.run_id < run_id)
                                  .order_by(digests.c.run_id.desc()).limit(1)).scalar() or ""
    tables, hashes = {}, {}
    for table in run_tables():
        done = None
        if written and table.name in written:
            done = _written_hashes(connection, table, run_id, written[table.name], (made or {}).get(table.name))
        if done is None:
            columns = [c.name for c in table.columns]
            done = columns, _hash_stored(connection, table, run_id, columns)
        columns, row_hashes_ = done
        tables[table.name] = {"count": len(row_hashes_) // ROW_HASH_BYTES,
                              "sha256": hashlib.sha256(row_hashes_).hexdigest(), "rows": ROW_SCHEME,
                              "columns": columns}
        hashes[table.name] = base64.b64encode(row_hashes_).decode()
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
            entries = json.loads(digest.tables)
            stored, problem = _row_hashes_of(digest.run_id, digest.row_hashes, entries)
            if problem:
                report.problems.append(problem)
                return report
            for table in run_tables():
                if table.name not in stored:
                    continue
                problem = _first_difference(connection, table, digest.run_id, stored[table.name],
                                            entries.get(table.name, {}))
                if problem:
                    report.problems.append(problem)
                    return report
    return report


def _row_hashes_of(run_id: int, row_hashes: str, entries: dict) -> tuple[dict[str, bytes], str | None]:
    """A digest's row hashes per table, each checked against the SHA-256 its table entry (part of the chained
    digest) recorded: a changed row hash is named, never trusted."""
    out = {}
    for name, encoded in json.loads(row_hashes).items():
        hashes = base64.b64decode(encoded)
        if name in entries and hashlib.sha256(hashes).hexdigest() != entries[name].get("sha256"):
            return {}, f"run {run_id}, table {name}: its stored row hashes were changed / 行校验值被改动"
        out[name] = hashes
    return out, None


#: (store, run, digest) -> its checked row hashes: a household page reads them once per run, not per view
_SEALED: dict[tuple[str, int, str], dict[str, bytes]] = {}
_FIRST_IDS: dict[tuple[str, int, str, str], int | None] = {}


def _first_id(connection, table: Table, run_id: int, sealed_rows: int, key: tuple[str, int, str, str]) -> int | None:
    """The run's first row id in `table` when its rows' ids run on without a gap from the first to the last and
    there are as many as were sealed (a run is written in one transaction), so that a row's position in the
    sealed order is its id's offset; None otherwise (positions are then counted). Kept per run and digest."""
    if key not in _FIRST_IDS:
        low, high = connection.execute(select(func.min(table.c.id), func.max(table.c.id))
                                       .where(table.c.run_id == run_id)).one()
        while len(_FIRST_IDS) >= 256:
            _FIRST_IDS.pop(next(iter(_FIRST_IDS)))
        _FIRST_IDS[key] = low if low is not None and high - low + 1 == sealed_rows else None
    return _FIRST_IDS[key]


def _missing_columns(table: Table, entry: dict) -> list[str]:
    return [c for c in entry.get("columns", []) if c not in table.c]


def _hashed_rows(connection, table: Table, run_id: int, entry: dict) -> Iterator[tuple]:
    """(row, its hash) for every stored row of the run in id order, by the scheme the run was sealed with."""
    if entry.get("rows", 1) == 1:
        for row in _table_rows(connection, table, run_id):
            yield row, _row_hash(tuple(row))
        return
    size = ROW_HASH_BYTES
    for rows in _stored_chunks(connection, table, run_id, entry["columns"]):
        hashes = _rows_hashes(table, entry["columns"], rows)
        for index, row in enumerate(rows):
            yield row, hashes[index * size:(index + 1) * size]


def _first_difference(connection, table: Table, run_id: int, expected: bytes, entry: dict) -> str | None:
    size = ROW_HASH_BYTES
    if missing := _missing_columns(table, entry):
        return f"run {run_id}, table {table.name}: column(s) {', '.join(missing)} no longer exist / 数据列缺失"
    position = -1
    for position, (row, hashed) in enumerate(_hashed_rows(connection, table, run_id, entry)):
        if expected[position * size:(position + 1) * size] != hashed:
            who = f", household {row.household_id}" if "household_id" in row._fields else ""
            what = ("was changed or replaced, or a row before it deleted" if position * size < len(expected)
                    else "was added")
            return (f"run {run_id}, table {table.name}: row {position + 1} of the run (id {row.id}{who}) {what} "
                    "/ 数据行被改动")
    if (position + 1) * size < len(expected):
        return (f"run {run_id}, table {table.name}: {len(expected) // size - position - 1} row(s) after row "
                f"{position + 1} were deleted / 数据行被删除")
    return None


def _one_row_hash(table: Table, row, entry: dict) -> bytes:
    if entry.get("rows", 1) == 1:
        return _row_hash(tuple(row))
    columns = entry["columns"]
    values = tuple(row._mapping[c] for c in columns)
    form = _one_row_form(_kinds(table, columns), values)
    if form is not None:
        return hashlib.sha256(form).digest()[:ROW_HASH_BYTES]
    return _rows_hashes(table, columns, [values])


_NULL_PART = {"bool": b"\x01\x00", "int": b"\x01" + bytes(8), "float": b"\x01" + bytes(8)}


def _one_row_form(kinds: Sequence[str], values: Sequence) -> bytes | None:
    """One row's scheme-2 canonical form (`row_hashes`) built from its Python values, for the household
    check's few rows (the bulk form's Arrow calls cost more than the row); None where a value is not
    plainly of its column's kind (a value of another type, an out-of-range integer, text that is not
    UTF-8): the bulk form decides those. `tests/test_integrity.py` checks the two agree."""
    head, texts = bytearray(), []
    for kind, value in zip(kinds, values, strict=True):
        if kind in ("str", "other"):
            if value is None:
                head += b"\xff\xff\xff\xff"
                continue
            if kind == "str" and type(value) is not str:
                return None
            try:
                text = (value if kind == "str" else _plain(value)).encode("utf-8")
            except UnicodeEncodeError:
                return None
            head += len(text).to_bytes(4, "little")
            texts.append(text)
        elif value is None:
            head += _NULL_PART[kind]
        elif kind == "bool" and type(value) is bool:
            head += b"\x00\x01" if value else b"\x00\x00"
        elif kind == "int" and type(value) is int and -2**63 <= value < 2**63:
            head += b"\x00" + value.to_bytes(8, "little", signed=True)
        elif kind == "float" and type(value) is float:
            head += b"\x00" + struct.pack("<d", value + 0.0)  # (−0 + 0 is +0)
        else:
            return None
    return bytes(head) + b"".join(texts)


@functools.cache
def _household_queries(_tables: int) -> tuple[list[Table], dict[str, Select]]:
    """The tables holding a household's rows, and the statements `check_household` reads them with (built once
    per schema — `_tables`, the number of tables known — with bound parameters): the household's rows in run
    and id order, and the digests of the runs they are in."""
    tables = [t for t in run_tables() if "household_id" in t.c]
    queries = {t.name: select(t).where(t.c.household_id == bindparam("household_id")).order_by(t.c.run_id, t.c.id)
               for t in tables}
    queries[RunDigest.__tablename__] = (select(RunDigest.run_id, RunDigest.digest, RunDigest.tables)
                                        .where(RunDigest.run_id.in_(bindparam("runs", expanding=True))))
    return tables, queries


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
        tables, queries = _household_queries(len(SQLModel.metadata.tables))
        found = {t.name: connection.execute(queries[t.name], {"household_id": household_id}).all() for t in tables}
        runs = sorted({row.run_id for rows in found.values() for row in rows})
        digests = connection.execute(queries[RunDigest.__tablename__], {"runs": runs}).all() if runs else []
        entries = {d.run_id: json.loads(d.tables) for d in digests}
        digests_of = {d.run_id: d.digest for d in digests}
        store = engine.url.render_as_string(hide_password=True)
        sealed = {}
        for d in digests:
            key = (store, d.run_id, d.digest)  # (the digest is chained: quick_check has checked it and its tables)
            if key not in _SEALED:
                row_hashes = connection.execute(select(RunDigest.row_hashes).where(RunDigest.run_id == d.run_id))
                hashes, problem = _row_hashes_of(d.run_id, row_hashes.scalar(), entries[d.run_id])
                if problem:
                    report.problems.append(problem)
                    return report
                while len(_SEALED) >= 16:  # (bounded: the oldest runs read go first)
                    _SEALED.pop(next(iter(_SEALED)))
                _SEALED[key] = hashes
            sealed[d.run_id] = _SEALED[key]
        for table in tables:
            rows = found[table.name]
            previous: tuple[int, int, int] | None = None  # run, id, position
            for row in rows:
                if row.run_id not in sealed or table.name not in sealed[row.run_id]:
                    continue
                first = _first_id(connection, table, row.run_id, len(sealed[row.run_id][table.name]) // ROW_HASH_BYTES,
                                  (store, row.run_id, digests_of[row.run_id], table.name))
                if first is not None:  # the run's ids are consecutive: a row's position is its id's offset
                    position = row.id - first
                elif previous and previous[0] == row.run_id:
                    between = connection.execute(select(func.count()).where(
                        table.c.run_id == row.run_id, table.c.id > previous[1], table.c.id < row.id)).scalar()
                    position = previous[2] + 1 + between
                else:
                    position = connection.execute(select(func.count()).where(
                        table.c.run_id == row.run_id, table.c.id < row.id)).scalar()
                previous = (row.run_id, row.id, position)
                expected = sealed[row.run_id][table.name]
                stored = expected[position * ROW_HASH_BYTES:(position + 1) * ROW_HASH_BYTES]
                entry = entries[row.run_id].get(table.name, {})
                if _missing_columns(table, entry) or stored != _one_row_hash(table, row, entry):
                    report.problems.append(f"run {row.run_id}, table {table.name}: row {position + 1} of the run "
                                           f"(id {row.id}, this household) no longer matches / 数据行被改动")
                    return report
    return report
