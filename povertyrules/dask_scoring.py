"""A province on a cluster: score many household files on Dask, one task per file (a partition), each with the
same batch engine (`povertyrules.scoring.score`), so a partition is decided exactly as a file of its own.

What one process guarantees holds across partitions:

- rows are named by their source file and spreadsheet row (``file`` and ``row`` in decisions and errors);
- every error row of every partition is kept (written beside the decisions, one part per partition);
- a 户编号 that occurs in two partitions is a duplicate, both rows errors, as in one file: a first pass over the
  id columns alone finds ids in more than one partition (64-bit hashes, then the exact ids of the colliding
  hashes), and each partition is scored with those ids marked as duplicated elsewhere;
- the totals are the partitions' counts added up, and ``input rows = decided + rows with errors`` is checked.

Outputs are partitioned Parquet: ``OUT/part-00000.parquet …`` for decisions and ``OUT.errors/part-…`` (the errors
name follows `score`'s ``OUT.errors.SUFFIX``). With a store, the run row is written first (its counts are known
after scoring) and the workers then write the decisions, reasons and errors of their partitions with the store's
bulk writer (PostgreSQL COPY), re-scoring their partition with the records the store needs.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from povertyrules.errors import InputError, PovertyRulesError, require
from povertyrules.io.tables import member_sheet, read_table
from povertyrules.lang.rulebook import RuleBook
from povertyrules.model.columns import ERROR_COLUMNS, HOUSEHOLD_COLUMNS, header_map, normalize_header
from povertyrules.model.records import _text, rename_headers
from povertyrules.scoring import DECISIONS, ScoreResult, resolve_rules, score

PART = "part-{:05d}.parquet"
ID = HOUSEHOLD_COLUMNS[0].name  # household_id


@dataclass(frozen=True)
class Job:
    """What every partition is scored with (sent to the workers; the rule book is loaded there)."""

    rules: str | None = None
    override_files: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    year: int | None = None
    lang: str = "zh"

    def book(self) -> RuleBook:
        return resolve_rules(self.rules, self.overrides or None, list(self.override_files) or None)

    def score(self, file: str, duplicated_elsewhere: list[str], **options: Any) -> ScoreResult:
        return score(read_table(file), year=self.year, rules=self.book(), lang=self.lang, file=file,
                     members=member_sheet(file), members_file=f"{file}#members",  # a workbook's own sheet
                     duplicated_elsewhere=duplicated_elsewhere, **options)


@dataclass
class Part:
    """One scored partition: its counts, as `ScoreResult.accounting` and `summary` give them."""

    index: int
    file: str
    input_rows: int
    decided: int
    error_rows: int
    error_lines: int
    statuses: dict[tuple[str, str], int]
    years: list[int]
    rules_version: str
    sha256: str


@dataclass
class DaskRun:
    """A scored data set: the parts' counts added up, where the outputs are, and the run id if stored."""

    parts: list[Part]
    rules_version: str
    decisions: Path
    errors: Path
    run_id: int | None = None

    def accounting(self) -> dict[str, int]:
        return {"input_rows": sum(p.input_rows for p in self.parts), "decided": sum(p.decided for p in self.parts),
                "error_rows": sum(p.error_rows for p in self.parts)}

    @property
    def error_lines(self) -> int:
        return sum(p.error_lines for p in self.parts)

    def summary(self) -> pd.DataFrame:
        """Counts per status of each decision over all partitions (the columns of `ScoreResult.summary`)."""
        total: Counter = Counter()
        for part in self.parts:
            total.update(part.statuses)
        rows = sorted(((d, s, n) for (d, s), n in total.items()), key=lambda r: (DECISIONS.index(r[0]), -r[2], r[1]))
        return pd.DataFrame(rows, columns=["decision", "status", "count"])


def input_files(pattern: str | Path) -> list[str]:
    """The files a pattern names (a glob such as ``dir/*.parquet``, a folder of .parquet files, or one file)."""
    text = str(pattern)
    if Path(text).is_dir():
        files = sorted(str(p) for p in Path(text).glob("*.parquet"))
    else:
        files = sorted(f for f in glob.glob(text, recursive=True) if Path(f).is_file())
    if not files:
        raise InputError("没有匹配的输入文件", f"no input file matches {text}", file=text)
    return files


def errors_path(output: Path) -> Path:
    """Where the errors go, by `score`'s rule: ``OUT.errors.SUFFIX`` beside ``OUT.SUFFIX``."""
    return output.with_name(f"{output.stem}.errors{output.suffix}")


# -- the workers' tasks ------------------------------------------------------------------------------------

def household_ids(file: str) -> pd.Series:
    """The file's household ids as `parse_records` reads them (stripped text, blanks dropped); for Parquet only
    the id column is read."""
    if file.lower().endswith(".parquet"):
        lookup = header_map(HOUSEHOLD_COLUMNS)
        names = [n for n in pq.read_schema(file).names if getattr(lookup.get(normalize_header(n)), "name", "") == ID]
        if not names:
            return pd.Series([], dtype=object)
        frame = pq.read_table(file, columns=names[:1]).to_pandas().astype("string").rename(columns={names[0]: ID})
    else:
        frame = rename_headers(read_table(file), HOUSEHOLD_COLUMNS, file)
        if ID not in frame:
            return pd.Series([], dtype=object)
    ids = _text(frame[ID]).dropna()
    return ids.astype(object).reset_index(drop=True)


def _hash(ids: pd.Series) -> np.ndarray:
    return pd.util.hash_pandas_object(ids, index=False).to_numpy()


def id_hashes(file: str) -> np.ndarray:
    """The distinct 64-bit hashes of a partition's ids (what the duplicate pass sends to the client)."""
    return _guarded(lambda: np.unique(_hash(household_ids(file))))


def ids_with_hashes(file: str, hashes: np.ndarray) -> list[str]:
    """A partition's distinct ids whose hash is among `hashes` (the few candidates of a cross-partition id)."""
    def run() -> list[str]:
        ids = household_ids(file)
        return sorted(set(ids[np.isin(_hash(ids), hashes)]))
    return _guarded(run)


def score_part(index: int, file: str, job: Job, duplicated_elsewhere: list[str], decisions_dir: str,
               errors_dir: str) -> Part:
    """Score one partition and write its decisions and errors parts; return its counts."""
    def run() -> Part:
        writer: pq.ParquetWriter | None = None
        target = Path(decisions_dir) / PART.format(index)

        def sink(chunk: pd.DataFrame) -> None:
            nonlocal writer
            table = _arrow(chunk.assign(file=file))
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table)

        try:
            result = job.score(file, duplicated_elsewhere, sink=sink)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # nothing decided: an empty part with the decisions' columns
            pq.write_table(_arrow(result.decisions.assign(file=pd.Series(dtype=object))), target)
        pq.write_table(_arrow(result.errors[list(ERROR_COLUMNS)], integers=("row",)),
                       Path(errors_dir) / PART.format(index))
        statuses = {(row.decision, str(row.status)): int(row.count) for row in result.summary().itertuples()}
        years = sorted(int(y) for y in result.decisions["year"].unique()) if len(result.decisions) else []
        return Part(index, file, result.rows, len(result.decisions), result.error_rows, len(result.errors),
                    statuses, years, result.rules_version, _sha256(file))
    return _guarded(run)


def store_part(file: str, job: Job, duplicated_elsewhere: list[str], db: str, run_id: int) -> int:
    """Write one partition's decisions, reasons and errors into run `run_id` (COPY on PostgreSQL)."""
    def run() -> int:
        from povertyrules.store.database import connect, store_key_of
        from povertyrules.store.runs import append_rows

        result = job.score(file, duplicated_elsewhere, keep_records=True)
        engine = connect(db, prepare=False)  # the client created the tables
        with engine.begin() as connection:
            append_rows(connection, run_id, result, store_key_of(engine))
        return len(result.decisions)
    return _guarded(run)


def _guarded(run: Callable[[], Any]) -> Any:
    """Our errors carry keyword-only fields that do not survive pickling: send their message across as is."""
    try:
        return run()
    except PovertyRulesError as exc:
        raise PovertyRulesError(str(exc)) from None


def _arrow(frame: pd.DataFrame, integers: tuple[str, ...] = ()) -> pa.Table:
    """A table with one schema for every partition: numbers as they are, everything else large_string (an empty
    or all-blank partition would otherwise infer `null` columns)."""
    fields = []
    for name, dtype in frame.dtypes.items():
        if name in integers:
            fields.append(pa.field(name, pa.int64()))
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            fields.append(pa.field(name, pa.from_numpy_dtype(np.dtype(dtype))))
        else:
            fields.append(pa.field(name, pa.large_string()))
    return pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the client --------------------------------------------------------------------------------------------

def duplicated_across(client, files: list[str]) -> dict[int, list[str]]:
    """Partition index -> its ids that also occur in another partition."""
    hashes = client.gather(client.map(id_hashes, files, pure=False))
    counts = Counter()
    if hashes:
        values, seen = np.unique(np.concatenate(hashes), return_counts=True)
        candidates = values[seen > 1]
    else:
        candidates = np.array([], dtype=np.uint64)
    if not len(candidates):
        return {}
    holders = [i for i, h in enumerate(hashes) if np.isin(h, candidates).any()]
    found = client.gather([client.submit(ids_with_hashes, files[i], candidates, pure=False) for i in holders])
    for ids in found:
        counts.update(ids)
    shared = {i for i, n in counts.items() if n > 1}  # exact ids in two or more partitions (no hash collision)
    return {i: [x for x in ids if x in shared] for i, ids in zip(holders, found, strict=True) if shared & set(ids)}


def open_client(address: str | None, workers: int | None = None):
    """A client of the scheduler at `address`, or of a LocalCluster (one single-threaded process per worker)."""
    require("score --dask", "dask", "dask", "distributed")
    import logging

    from distributed import Client, LocalCluster

    if address:
        return Client(address)
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    return Client(cluster)


def score_on_dask(pattern: str | Path, output: Path, job: Job, *, address: str | None = None,
                  workers: int | None = None, client=None, store: bool = False, db: str | None = None,
                  operator: str | None = None, progress: Callable[[int, int], None] | None = None) -> DaskRun:
    """Score every file `pattern` names on the cluster; write partitioned decisions and errors; store if asked."""
    files = input_files(pattern)
    book = job.book()  # fail early, here, on a rules problem
    decisions_dir, errors_dir = output, errors_path(output)
    for folder in (decisions_dir, errors_dir):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("part-*.parquet"):
            old.unlink()
    own = client is None
    client = client or open_client(address, workers)
    try:
        duplicates = duplicated_across(client, files)
        futures = [client.submit(score_part, i, f, job, duplicates.get(i, []), str(decisions_dir), str(errors_dir),
                                 pure=False) for i, f in enumerate(files)]
        from distributed import as_completed

        parts: list[Part] = []
        for future in as_completed(futures):
            parts.append(future.result())
            if progress:
                progress(len(parts), len(files))
        parts.sort(key=lambda p: p.index)
        versions = {p.rules_version for p in parts}
        if versions != {book.version}:
            raise PovertyRulesError(f"workers scored with other rules ({sorted(versions)}) than the client "
                                    f"({book.version}): install the same rules on every worker")
        run = DaskRun(parts, book.version, decisions_dir, errors_dir)
        if store:
            run.run_id = _store(client, run, files, job, duplicates, book, str(pattern), db, operator)
        return run
    finally:
        if own:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()


def _store(client, run: DaskRun, files: list[str], job: Job, duplicates: dict[int, list[str]], book: RuleBook,
           pattern: str, db: str | None, operator: str | None) -> int:
    from sqlmodel import Session

    from povertyrules.store.database import connect
    from povertyrules.store.runs import new_run

    db = db or os.environ.get("POVERTYRULES_DB") or "povertyrules.db"
    engine = connect(db)
    counts = run.accounting()
    years = sorted({y for p in run.parts for y in p.years})
    manifest = "".join(f"{p.sha256}  {p.file}\n" for p in run.parts)  # as sha256sum prints it
    row = new_run(book, pattern, years, decided=counts["decided"], error_rows=counts["error_rows"],
                  input_rows=counts["input_rows"], operator=operator, lang=job.lang,
                  input_sha256=hashlib.sha256(manifest.encode()).hexdigest())
    with Session(engine) as session:
        session.add(row)
        session.commit()
        run_id = int(row.id)
    target = db if "://" in db else str(Path(db).resolve())  # the workers may not share our working folder
    tasks = [(f, duplicates.get(i, [])) for i, f in enumerate(files)]
    if engine.dialect.name == "postgresql":  # every worker COPYs its partitions at once
        written = client.gather([client.submit(store_part, f, job, d, target, run_id, pure=False) for f, d in tasks])
    else:  # SQLite has one writer at a time
        written = [client.submit(store_part, f, job, d, target, run_id, pure=False).result() for f, d in tasks]
    if sum(written) != counts["decided"]:  # pragma: no cover - re-scoring is deterministic
        raise PovertyRulesError(f"stored {sum(written)} decisions, scored {counts['decided']} (run {run_id})")
    from povertyrules.store import integrity

    with engine.begin() as connection:  # every partition is in: digest the run and chain it
        integrity.seal(connection, run_id)
    return run_id
