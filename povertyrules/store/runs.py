"""Recording a scored run in the audit store, and reading it back."""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, bindparam, func, select
from sqlmodel import Session

from povertyrules.decisions.trace import trace_rules
from povertyrules.lang.clauses import clauses
from povertyrules.lang.rulebook import RuleBook
from povertyrules.scoring import ScoreResult
from povertyrules.store import integrity
from povertyrules.store.database import (
    arrow_rows,
    bound_rows,
    bulk_insert_table,
    insert_bound,
    retrying,
    store_key_of,
    stored_form,
)
from povertyrules.store.models import Contradiction, Decision, Evidence, Reason, Run, RunError
from povertyrules.store.rows import codebook_of, json_arrays, json_records, make_codebook, readable, reasons_texts

DECISION_FIELDS = [c for c in Decision.model_fields if c != "id"]
ERROR_FIELDS = [c for c in RunError.model_fields if c != "id"]
EVIDENCE_FIELDS = [c for c in Evidence.model_fields if c != "id"]
CONTRADICTION_FIELDS = [c for c in Contradiction.model_fields if c != "id"]
BATCH = 50_000


class NotFound(LookupError):
    """A household or run the store does not hold."""


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parameter_snapshot(book: RuleBook, years: list[int]) -> dict:
    """Every parameter's value in force for each year, with unit, clause, source and confidence."""
    snapshot = {}
    for name, parameter in sorted(book.parameters.items()):
        values = {}
        for year in years:
            entry = parameter.entry(year)
            values[str(year)] = None if entry is None else {
                "value": entry[1].value, "since": entry[0].isoformat(), "source": entry[1].source,
                "confidence": entry[1].confidence}
        snapshot[name] = {"unit": parameter.unit, "clause": parameter.clause, "values": values}
    return snapshot


def rules_snapshot(book: RuleBook) -> dict:
    """The rule files and overrides as text, enough to rebuild the exact rule set later."""
    files = {str(p.relative_to(book.root)): p.read_text(encoding="utf-8")
             for p in sorted(book.root.rglob("*.yaml")) if "tests" not in p.relative_to(book.root).parts}
    overrides = {str(i): Path(p).read_text(encoding="utf-8") for i, p in enumerate(book.override_files)}
    return {"version": book.version, "files": files, "overrides": overrides,
            "override_values": json.loads(json.dumps(book.override_values, default=str))}


def record_run(engine: Engine, result: ScoreResult, input_file: str | Path, operator: str | None = None,
               lang: str = "zh", reading: dict | None = None) -> int:
    """Append one run (one row per household: its typed input, outcomes and trace; errors) and return its id.
    Reasons are not stored: `reasons_of` re-derives them from the trace, the input and the run's snapshot
    (a row keeps only its one-line main reason, by its position in the run's codebook, `rows`).
    Re-scoring makes a new run. `reading` says how the file was read (its layout, the blanks the layout
    declares to be zero, the side sheets joined); it is kept with the run's rule snapshot."""
    if result.inputs is None:
        raise ValueError("score with keep_records=True to store a run")
    decisions = result.decisions
    years = sorted({int(y) for y in decisions["year"].unique()}) if len(decisions) else []
    prepared = stored_rows(result, store_key_of(engine), codebook=True)  # (before the write lock is taken)

    def write() -> int:  # one transaction; tried again while another writer holds the database
        with Session(engine) as session:
            integrity.lock(session.connection())
            run = new_run(result.book, input_file, years, decided=len(decisions), error_rows=result.error_rows,
                          input_rows=result.rows, operator=operator, lang=lang, reading=reading,
                          codebook=prepared.codebook)
            session.add(run)
            session.flush()  # the first statement writes, so SQLite takes the write lock at once (no upgrade)
            run_id = int(run.id)
            connection = session.connection()
            written, hashed = write_rows(connection, run_id, prepared)
            integrity.seal(connection, run_id, written, hashed)  # hashed from the rows as written
            session.commit()
        return run_id

    return retrying(write)


def new_run(book: RuleBook, input_file: str | Path, years: list[int], *, decided: int, error_rows: int,
            input_rows: int, operator: str | None = None, lang: str = "zh", input_sha256: str | None = None,
            reading: dict | None = None, codebook: dict | None = None) -> Run:
    """The run row: who, when, which input (and its sha256), the rule set and every value in force, the counts,
    and the codebook its rows refer to (`povertyrules.store.rows`; None: rows stored as objects and text)."""
    cited = sorted(book.cited_clauses())
    known = clauses()
    return Run(
        created_at=dt.datetime.now(dt.UTC), operator=operator or getpass.getuser(),
        input_file=str(input_file), year=years[0] if len(years) == 1 else None, rules_version=book.version,
        input_sha256=input_sha256 if input_sha256 is not None else
        sha256(input_file) if Path(input_file).is_file() else "",
        decided=decided, error_rows=error_rows, input_rows=input_rows, lang=lang,
        parameters=json.dumps(parameter_snapshot(book, years), ensure_ascii=False),
        rules_snapshot=json.dumps({**rules_snapshot(book), "reading": reading or {}}, ensure_ascii=False),
        clauses=json.dumps({c: known.get(c) for c in cited}, ensure_ascii=False),
        trace_rules=json.dumps(trace_rules(book)),
        codebook=json.dumps(codebook, ensure_ascii=False) if codebook is not None else None,
    )


#: households made and written at a time: the next part is made (pseudonyms, JSON, hashes) in a second thread
#: while the database writes one
PART = 50_000


class StoredRows:
    """A scored result's rows as the store keeps them, every column but ``run_id``: identity numbers as masked
    form + keyed hash, made in Arrow. The decisions (one row per household: input, outcomes, trace, main reason)
    are made a part at a time (`decision_part`), the errors and register rows at once (`tables`). With
    `codebook`, input rows are JSON arrays and reasons positions in the `codebook` (`povertyrules.store.rows`);
    without, JSON objects and text."""

    def __init__(self, result: ScoreResult, key: bytes, codebook: bool):
        from povertyrules.privacy import pseudonym_frame, pseudonym_text

        self._result, self._key = result, key
        self.households = len(result.decisions)
        self.parts = max(1, -(-self.households // PART))
        self.codebook: dict | None = None
        self._reasons: pa.Array | None = None  # every row's reason as stored, when coded
        if codebook:
            reasons = pa.array(result.decisions["reasons"], pa.string(), from_pandas=True)
            self.codebook, coded = make_codebook([c for c in result.inputs.columns if c != "row"], reasons)
            if "reasons" in self.codebook:  # (identity numbers masked once per text)
                self.codebook["reasons"] = [pseudonym_text(t, key) for t in self.codebook["reasons"]]
                self._reasons = coded
        errors = pseudonym_frame(result.errors, key)
        self.tables = {"runerror": _stored(RunError, errors, [c for c in ERROR_FIELDS if c != "run_id"]),
                       **_register_rows(result)}

    def decision_part(self, index: int) -> pa.Table:
        """Decision rows ``index * PART`` up to the next part's, as stored."""
        from povertyrules.privacy import pseudonym_frame

        start, stop = index * PART, min(self.households, (index + 1) * PART)
        decisions = self._result.decisions.iloc[start:stop]
        inputs = pseudonym_frame(self._result.inputs.iloc[start:stop].drop(columns=["row"]), self._key)
        if self._reasons is not None:
            reasons = self._reasons[start:stop]
        else:
            masked = pseudonym_frame(decisions[["reasons"]], self._key)["reasons"]
            reasons = pa.array(masked, pa.string(), from_pandas=True)
        fields = [c for c in DECISION_FIELDS if c not in ("run_id", "reasons", "inputs")]
        rows = _stored(Decision, pseudonym_frame(decisions[fields], self._key), fields)
        texts = json_arrays(inputs) if self.codebook is not None else json_records(inputs)
        rows = rows.append_column("reasons", reasons).append_column("inputs", texts)
        return rows.select([c for c in DECISION_FIELDS if c != "run_id"])


def stored_rows(result: ScoreResult, key: bytes, codebook: bool) -> StoredRows:
    return StoredRows(result, key, codebook)


def append_rows(connection, run_id: int, result: ScoreResult, key: bytes) -> dict[str, pa.Table]:
    """Bulk-write a scored result's decisions and errors into run `run_id`, one call per partition when a run is
    scored in parts (each part's input rows as JSON objects and reasons as text: the run has no codebook).
    Returns the rows written per table, as stored (for `integrity.seal`)."""
    if result.inputs is None:
        raise ValueError("score with keep_records=True to store a run")
    return write_rows(connection, run_id, stored_rows(result, key, codebook=False), hash_ahead=False)[0]


def write_rows(connection, run_id: int, rows: StoredRows,
               hash_ahead: bool = True) -> tuple[dict[str, pa.Table], dict[str, tuple]]:
    """Bulk-insert prepared rows into run `run_id` (COPY on PostgreSQL): each part of the decisions is made,
    bound for the database and (where the database says the ids it will give beforehand: SQLite) hashed for
    the integrity chain in a second thread while the previous one is written. Returns the rows as written per
    table, and the row hashes made on the way (for `integrity.seal`). `hash_ahead` only where the caller holds
    the write lock already (a run's own transaction: its run row is written first)."""
    dialect = connection.dialect.name

    def with_run(table: pa.Table) -> pa.Table:
        return table.add_column(0, "run_id", pa.array(np.full(table.num_rows, run_id, dtype=np.int64)))

    first = integrity.next_id(connection, "decision") if hash_ahead else None

    def make(index: int):
        part = with_run(rows.decision_part(index))
        hashed = integrity.part_hashes("decision", first + index * PART, part) if first is not None else None
        return part, bound_rows(dialect, "decision", part), hashed

    parts, hashes = [], []
    for part, bound, hashed in _ahead(make, rows.parts):
        if part.num_rows:
            insert_bound(connection, bound)
        parts.append(part)
        hashes.append(hashed)
    written = {"decision": pa.concat_tables(parts)}
    made = {"decision": (first, b"".join(hashes))} if first is not None else {}
    for name, table in rows.tables.items():
        table = with_run(table)
        if table.num_rows:
            bulk_insert_table(connection, name, table)
        written[name] = table
    return written, made


def _ahead(make, count: int):
    """``make(0)``, ``make(1)``, … ``make(count - 1)``, each made in a second thread while the caller uses the
    one before."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="store-rows") as pool:
        coming = pool.submit(make, 0) if count else None
        for index in range(count):
            made = coming.result()
            coming = pool.submit(make, index + 1) if index + 1 < count else None
            yield made


def _stored(model, frame: pd.DataFrame, fields: list[str]) -> pa.Table:
    return arrow_rows(model.__table__, frame, fields)


def _register_rows(result: ScoreResult) -> dict[str, pa.Table]:
    """The register evidence and contradictions of the run (identities in them are already masked)."""
    out = {}
    if result.evidence is not None and len(result.evidence):
        evidence = result.evidence.rename(columns={"date": "record_date", "register": "register_name"})
        out["evidence"] = _stored(Evidence, evidence, [c for c in EVIDENCE_FIELDS if c != "run_id"])
    if result.contradictions is not None and len(result.contradictions):
        table = result.contradictions.assign(file_value=result.contradictions["file_value"].astype(str),
                                             register_value=result.contradictions["register_value"].astype(str))
        out["contradiction"] = _stored(Contradiction, table, [c for c in CONTRADICTION_FIELDS if c != "run_id"])
    return out


@functools.cache
def _query(name: str):
    """The household page's queries, built once (with bound parameters): building a statement costs about as
    much as running it."""
    household, run = bindparam("household_id"), bindparam("run_id")
    if name == "evidence":
        return (select(Evidence).where(Evidence.run_id == run, Evidence.household_id == household)
                .order_by(Evidence.column, Evidence.id))
    if name == "contradictions":
        return (select(Contradiction).where(Contradiction.run_id == run, Contradiction.household_id == household)
                .order_by(Contradiction.household_id, Contradiction.id))
    if name == "decision in run":
        return (select(Decision, Run.codebook).join(Run, Run.id == Decision.run_id)
                .where(Decision.household_id == household, Decision.run_id == run).limit(1))
    if name == "latest decision":
        return (select(Decision, Run.codebook).join(Run, Run.id == Decision.run_id)
                .where(Decision.household_id == household).order_by(Decision.run_id.desc()).limit(1))
    if name == "history":
        from sqlalchemy.orm import load_only

        return (select(Run, Decision).options(load_only(Run.id, Run.created_at, Run.rules_version, Run.codebook))
                .join(Decision, Decision.run_id == Run.id).where(Decision.household_id == household)
                .order_by(Run.id))
    raise KeyError(name)


def evidence_of(engine: Engine, household_id: str, run_id: int) -> list[Evidence]:
    """The register records behind the household's facts in a run."""
    with Session(engine) as session:
        return list(session.execute(_query("evidence"), {"run_id": run_id, "household_id": household_id}).scalars())


def contradictions_of(engine: Engine, run_id: int, household_id: str | None = None) -> list[Contradiction]:
    """Where a register says otherwise than the household file, in a run (the 核查 list)."""
    with Session(engine) as session:
        if household_id is not None:
            found = session.execute(_query("contradictions"), {"run_id": run_id, "household_id": household_id})
            return list(found.scalars())
        query = select(Contradiction).where(Contradiction.run_id == run_id)
        return list(session.execute(query.order_by(Contradiction.household_id, Contradiction.id)).scalars())


# -- reading ------------------------------------------------------------------------------------------

def get_run(engine: Engine, run_id: int) -> Run:
    with Session(engine) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"审计库中没有运行 {run_id} / the store holds no run {run_id}")
        return run


def runs(engine: Engine) -> list[Run]:
    with Session(engine) as session:
        return list(session.execute(select(Run).order_by(Run.id)).scalars())


def decision_of(engine: Engine, household_id: str, run_id: int | None = None) -> Decision:
    """The household's decision in the given run, or in the latest run that decided it."""
    household_id = stored_form(engine, household_id)
    with Session(engine) as session:
        query, values = (_query("decision in run"), {"household_id": household_id, "run_id": run_id}) if run_id \
            else (_query("latest decision"), {"household_id": household_id})
        found = session.execute(query, values).first()  # (decision, its run's codebook)
    if found is None:
        zh, en = (f"（第 {run_id} 次运行）", f" in run {run_id}") if run_id else ("", "")
        raise NotFound(f"户 {household_id} 不在审计库中{zh} / household {household_id} is not in the store{en}")
    return readable(found[1], [found[0]])[0]


def reasons_of(engine: Engine, household_id: str, run_id: int) -> list[Reason]:
    """The reasons of a stored decision, re-derived from its input row and the run's rule snapshot."""
    household_id = stored_form(engine, household_id)
    records = reasons_for(engine, run_id, [household_id])
    return [Reason(run_id=run_id, **r) for r in records.get(household_id, [])]


def reasons_for(engine: Engine, run_id: int, ids: list[str]) -> dict[str, list[dict]]:
    """Household id -> its reason records in one run (every cited rule with verdict, observed values,
    thresholds and message), re-derived in one batch; the stored trace must agree with the re-derivation."""
    from povertyrules.store.explain import derive_reasons

    run = get_run(engine, run_id)
    with Session(engine) as session:
        rows = []
        for start in range(0, len(ids), 500):
            rows += session.execute(select(Decision).where(Decision.run_id == run_id,
                                                           Decision.household_id.in_(ids[start:start + 500]))).scalars()
    return derive_reasons(run, readable(run, rows))[1]


def history_of(engine: Engine, household_id: str) -> list[tuple[Run, Decision]]:
    """The household's decision in every run, with the run's id, time and rules version (the runs' rule
    snapshots are not loaded)."""
    household_id = stored_form(engine, household_id)
    with Session(engine) as session:
        found = session.execute(_query("history"), {"household_id": household_id}).all()
        return [(r, readable(r, [d])[0]) for r, d in found]


def decisions_frame(engine: Engine, run_id: int | None = None, with_id: bool = False) -> pd.DataFrame:
    """A stored run's decisions as a DataFrame (the latest run by default); `with_id` adds the stored row's id.
    `reasons` is text; `inputs` as stored (read it with `input_frame`)."""
    with Session(engine) as session:
        run_id = run_id or session.execute(select(func.max(Run.id))).scalar()
        if run_id is None:
            raise NotFound("审计库中没有任何运行 / the store holds no run")
        codebook = codebook_of(session.execute(select(Run.codebook).where(Run.id == run_id)).scalar())
        fields = ["id", *DECISION_FIELDS] if with_id else DECISION_FIELDS
        query = select(*(getattr(Decision, c) for c in fields)).where(Decision.run_id == run_id)
        query = query.order_by(Decision.id) if with_id else query
        frame = pd.read_sql(query, session.connection())
    return _readable_reasons(frame, codebook)


def input_frame(run: Run, decisions: pd.DataFrame) -> pd.DataFrame:
    """The stored input rows of `decisions` (a frame of `run`'s decisions, with ``inputs``) as a DataFrame
    with one column per stored input column, on the same index."""
    from povertyrules.store.rows import input_frame as frame_of

    return frame_of(codebook_of(run), decisions["inputs"].tolist(), index=decisions.index)


def _readable_reasons(frame: pd.DataFrame, codebook: dict | None) -> pd.DataFrame:
    if "reasons" in frame and codebook and "reasons" in codebook:
        frame["reasons"] = reasons_texts(codebook, frame["reasons"].tolist())
    return frame


def decision_chunks(engine: Engine, run_id: int, size: int = BATCH, fields: list[str] | None = None):
    """A stored run's decisions (`fields`, default all) as DataFrames of `size` rows each, in household order
    (bounded memory); each chunk's columns are built by Arrow, not row by row."""
    import pyarrow as pa

    fields = list(fields or DECISION_FIELDS)
    query = (select(*(getattr(Decision, c) for c in fields)).where(Decision.run_id == run_id)
             .order_by(Decision.id))
    with engine.connect() as connection:
        codebook = codebook_of(connection.execute(select(Run.codebook).where(Run.id == run_id)).scalar())
        result = connection.execution_options(stream_results=True, max_row_buffer=size).execute(query)
        while rows := result.fetchmany(size):
            try:
                chunk = pa.table([pa.array(column) for column in zip(*rows, strict=True)], names=fields).to_pandas()
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed Python types
                chunk = pd.DataFrame(rows, columns=fields)
            yield _readable_reasons(chunk, codebook)
