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
import pyarrow.compute as pc
from sqlalchemy import Engine, bindparam, func, select
from sqlmodel import Session

from povertyrules.decisions.trace import trace_rules
from povertyrules.lang.clauses import clauses
from povertyrules.lang.rulebook import RuleBook
from povertyrules.scoring import ScoreResult
from povertyrules.store import integrity
from povertyrules.store.database import arrow_rows, bulk_insert_table, retrying, store_key_of, stored_form
from povertyrules.store.models import Contradiction, Decision, Evidence, Reason, Run, RunError

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
    Reasons are not stored: `reasons_of` re-derives them from the trace, the input and the run's snapshot.
    Re-scoring makes a new run. `reading` says how the file was read (its layout, the blanks the layout
    declares to be zero, the side sheets joined); it is kept with the run's rule snapshot."""
    if result.inputs is None:
        raise ValueError("score with keep_records=True to store a run")
    decisions = result.decisions
    years = sorted({int(y) for y in decisions["year"].unique()}) if len(decisions) else []

    def write() -> int:  # one transaction; tried again while another writer holds the database
        with Session(engine) as session:
            integrity.lock(session.connection())
            run = new_run(result.book, input_file, years, decided=len(decisions), error_rows=result.error_rows,
                          input_rows=result.rows, operator=operator, lang=lang, reading=reading)
            session.add(run)
            session.flush()  # the first statement writes, so SQLite takes the write lock at once (no upgrade)
            run_id = int(run.id)
            connection = session.connection()
            written = append_rows(connection, run_id, result, store_key_of(engine))
            integrity.seal(connection, run_id, written)  # hashed from the rows as written
            session.commit()
        return run_id

    return retrying(write)


def new_run(book: RuleBook, input_file: str | Path, years: list[int], *, decided: int, error_rows: int,
            input_rows: int, operator: str | None = None, lang: str = "zh", input_sha256: str | None = None,
            reading: dict | None = None) -> Run:
    """The run row: who, when, which input (and its sha256), the rule set and every value in force, the counts."""
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
    )


def append_rows(connection, run_id: int, result: ScoreResult, key: bytes) -> dict[str, pa.Table]:
    """Bulk-write a scored result's decisions (one row per household: input, outcomes, trace) and errors into
    run `run_id` (COPY on PostgreSQL), identity numbers as masked form + keyed hash; one call per partition
    when a run is scored in parts. Returns the rows written per table, as stored (for `integrity.seal`)."""
    from povertyrules.privacy import pseudonym_frame

    if result.inputs is None:
        raise ValueError("score with keep_records=True to store a run")
    decisions, inputs = pseudonym_frame(result.decisions, key), pseudonym_frame(result.inputs, key)
    errors = pseudonym_frame(result.errors, key).assign(run_id=run_id)
    written = {"decision": _decision_rows(run_id, decisions, inputs),
               "runerror": _stored(RunError, errors, ERROR_FIELDS), **_register_rows(run_id, result)}
    for table, rows in written.items():
        if rows.num_rows:
            bulk_insert_table(connection, table, rows)
    return written


def _stored(model, frame: pd.DataFrame, fields: list[str]) -> pa.Table:
    return arrow_rows(model.__table__, frame, fields)


def _register_rows(run_id: int, result: ScoreResult) -> dict[str, pa.Table]:
    """The register evidence and contradictions of the run (identities in them are already masked)."""
    out = {}
    if result.evidence is not None and len(result.evidence):
        evidence = result.evidence.rename(columns={"date": "record_date", "register": "register_name"})
        out["evidence"] = _stored(Evidence, evidence.assign(run_id=run_id), EVIDENCE_FIELDS)
    if result.contradictions is not None and len(result.contradictions):
        table = result.contradictions.assign(run_id=run_id,
                                             file_value=result.contradictions["file_value"].astype(str),
                                             register_value=result.contradictions["register_value"].astype(str))
        out["contradiction"] = _stored(Contradiction, table, CONTRADICTION_FIELDS)
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
        return select(Decision).where(Decision.household_id == household, Decision.run_id == run).limit(1)
    if name == "latest decision":
        return select(Decision).where(Decision.household_id == household).order_by(Decision.run_id.desc()).limit(1)
    if name == "history":
        from sqlalchemy.orm import load_only

        return (select(Run, Decision).options(load_only(Run.id, Run.created_at, Run.rules_version))
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


def _decision_rows(run_id: int, decisions: pd.DataFrame, inputs: pd.DataFrame) -> pa.Table:
    """The decisions as stored, each with its typed input row as JSON (made in Arrow, joined as Arrow)."""
    fields = [c for c in DECISION_FIELDS if c != "inputs"]
    rows = _stored(Decision, decisions.assign(run_id=run_id), fields)
    rows = rows.append_column("inputs", json_records(inputs.drop(columns=["row"])))
    return rows.select(DECISION_FIELDS)


def json_records(frame: pd.DataFrame) -> pa.Array:
    """Each row of `frame` as a JSON object (``{"column": value, …}``, text unescaped as in
    ``ensure_ascii=False``; numbers of a float column with a fraction or exponent, ``4.0`` not ``4``; a blank
    or non-finite number as null), built column by column in Arrow. `json.loads` of a line gives the row's
    values, floats exactly (their shortest round-trip form)."""
    if not len(frame.columns):
        return pa.array(["{}"] * len(frame), pa.string())
    parts: list = []
    for index, name in enumerate(frame.columns):
        parts += [("{" if index == 0 else ",") + json.dumps(str(name), ensure_ascii=False) + ":",
                  _json_values(frame[name])]
    return pc.binary_join_element_wise(*parts, "}", "")


def _json_values(column: pd.Series) -> pa.Array:
    """One column's values as JSON text ("null" for a blank)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        values = pa.array(column, type=pa.bool_(), from_pandas=True)
        return pc.fill_null(pc.if_else(values, "true", "false"), "null")
    if pd.api.types.is_integer_dtype(dtype):
        return pc.fill_null(pc.cast(pa.array(column, from_pandas=True), pa.string()), "null")
    if pd.api.types.is_float_dtype(dtype):
        return _json_floats(column.to_numpy(dtype=float, na_value=np.nan))
    text = _text(column)
    if text is None:  # numbers or other values in a text column: as json writes them
        return pa.array([_json_value(v) for v in column], pa.string())
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = np.flatnonzero(pc.fill_null(pc.match_substring_regex(text, r"[\x00-\x1f]"), False))
    if len(control):  # (a control character: escaped as json escapes it)
        values = quoted.to_pylist()
        for at in control:
            values[at] = json.dumps(text[int(at)].as_py(), ensure_ascii=False)
        quoted = pa.array(values, pa.string())
    return pc.fill_null(quoted, "null")


def _text(column: pd.Series) -> pa.Array | None:
    """A text (or category of text) column as an Arrow string array; None if it holds other values."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    try:
        return pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None


def _json_floats(numbers: np.ndarray) -> pa.Array:
    """Floats as Python's json writes them (shortest round-trip digits, ``4.0`` not ``4``); NaN and ±inf as null."""
    finite = np.isfinite(numbers)
    text = pc.cast(pa.array(numbers, mask=~finite), pa.string())  # (Arrow writes 4.0 as "4", 1e10 as "1e+10")
    with np.errstate(invalid="ignore"):
        whole = pa.array(finite & (np.mod(numbers, 1.0) == 0))
    if pc.any(whole).as_py():
        needs = pc.and_(whole, pc.invert(pc.fill_null(pc.match_substring(text, "e"), False)))
        text = pc.if_else(needs, pc.binary_join_element_wise(text, ".0", ""), text)
    return pc.fill_null(text, "null")


def _json_value(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or value is pd.NA:
        return "null"
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value, ensure_ascii=False, default=str)


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
        found = session.execute(query, values).scalars().first()
    if found is None:
        zh, en = (f"（第 {run_id} 次运行）", f" in run {run_id}") if run_id else ("", "")
        raise NotFound(f"户 {household_id} 不在审计库中{zh} / household {household_id} is not in the store{en}")
    return found


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
    return derive_reasons(run, rows)[1]


def history_of(engine: Engine, household_id: str) -> list[tuple[Run, Decision]]:
    """The household's decision in every run, with the run's id, time and rules version (the runs' rule
    snapshots are not loaded)."""
    household_id = stored_form(engine, household_id)
    with Session(engine) as session:
        return [(r, d) for r, d in session.execute(_query("history"), {"household_id": household_id}).all()]


def decisions_frame(engine: Engine, run_id: int | None = None, with_id: bool = False) -> pd.DataFrame:
    """A stored run's decisions as a DataFrame (the latest run by default); `with_id` adds the stored row's id."""
    with Session(engine) as session:
        run_id = run_id or session.execute(select(func.max(Run.id))).scalar()
        if run_id is None:
            raise NotFound("审计库中没有任何运行 / the store holds no run")
        fields = ["id", *DECISION_FIELDS] if with_id else DECISION_FIELDS
        query = select(*(getattr(Decision, c) for c in fields)).where(Decision.run_id == run_id)
        query = query.order_by(Decision.id) if with_id else query
        return pd.read_sql(query, session.connection())


def decision_chunks(engine: Engine, run_id: int, size: int = BATCH, fields: list[str] | None = None):
    """A stored run's decisions (`fields`, default all) as DataFrames of `size` rows each, in household order
    (bounded memory); each chunk's columns are built by Arrow, not row by row."""
    import pyarrow as pa

    fields = list(fields or DECISION_FIELDS)
    query = (select(*(getattr(Decision, c) for c in fields)).where(Decision.run_id == run_id)
             .order_by(Decision.id))
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, max_row_buffer=size).execute(query)
        while rows := result.fetchmany(size):
            try:
                chunk = pa.table([pa.array(column) for column in zip(*rows, strict=True)], names=fields).to_pandas()
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed Python types
                chunk = pd.DataFrame(rows, columns=fields)
            yield chunk
