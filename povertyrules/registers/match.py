"""Department registers → household facts with their evidence.

`read_register` reads a department's file as it is (the header found under any title lines by the layouts'
`find_table`; a CSV with its header on line 1 read whole by Arrow), parses each field, and lists every line it
cannot use (a malformed 证件号码 or date) as an error with the sheet's own line. `apply_registers` joins the
records to households through every member's 证件号码 (a hash join, `DataFrame.merge`), keeps the records in the
rule's date window, aggregates the facts per household (numpy group sums), combines them with what the household
file says, and returns the evidence (one row per record behind a fact), the contradictions (the file says one
thing, the register another) and, per register, how its lines were accounted for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from povertyrules.engines.vectorized import Evaluation, Vec, _Evaluator, column_vec
from povertyrules.errors import InputError
from povertyrules.io.sheets import read_grid, sniff
from povertyrules.io.tables import read_table
from povertyrules.lang.rulebook import RuleBook
from povertyrules.layouts.prepare import SKIPPED_COLUMNS, _empty, _id_numbers, _reason, _series
from povertyrules.layouts.spec import CONTRACT
from povertyrules.layouts.table import classify, find_table
from povertyrules.model.columns import ERROR_COLUMNS, Column
from povertyrules.model.records import _parse
from povertyrules.privacy import mask_id_numbers
from povertyrules.privacy import mask_text as mask_identities
from povertyrules.registers.spec import Register

EVIDENCE_COLUMNS = ("household_id", "column", "clause", "register", "kind", "date", "member", "text", "file", "row")
CONTRADICTION_COLUMNS = ("household_id", "column", "file_value", "register_value", "evidence", "register_file")
UNMATCHED_COLUMNS = ("row", "register", "kind", "date", "member", "reason", "file")
DATE_FORMS = ("%Y-%m-%d", "%Y%m%d")


@dataclass
class RegisterRecords:
    register: Register
    file: str
    records: pd.DataFrame  # one column per field (typed; dates as datetime64) and `__row`
    errors: pd.DataFrame  # ERROR_COLUMNS
    skipped: pd.DataFrame  # SKIPPED_COLUMNS
    lines: int


@dataclass
class RegisterResult:
    """What the registers changed: the frame, the evidence behind it, contradictions and the accounting."""

    frame: pd.DataFrame
    evidence: pd.DataFrame  # EVIDENCE_COLUMNS
    contradictions: pd.DataFrame  # CONTRADICTION_COLUMNS
    unmatched: pd.DataFrame  # UNMATCHED_COLUMNS
    errors: pd.DataFrame  # ERROR_COLUMNS
    skipped: pd.DataFrame
    accounts: list[dict] = field(default_factory=list)
    matched: list[pd.DataFrame] = field(default_factory=list)  # per register: its in-window records + household

    def evidence_text(self) -> pd.Series:
        """household_id → its evidence sentences joined (for the decisions' `evidence` column)."""
        if not len(self.evidence):
            return pd.Series(dtype=object)
        return self.evidence.drop_duplicates(["household_id", "text"]).groupby("household_id", sort=False)[
            "text"].agg("；".join)


def read_register(path: Path | str, register: Register) -> RegisterRecords:
    path = Path(path)
    text = sniff(path) in ("csv", "parquet")
    grid = read_grid(path, limit=40 if text else None)
    table = find_table(grid, {}, register.layout)
    id_col = table.columns.get(register.id_number)
    if id_col is None:
        raise InputError(f"找不到证件号码列（{register.layout.fields[register.id_number].headers[0]}）",
                         "no ID-number column found", file=str(path))
    missing = [n for n in (register.date,) if n not in table.columns]
    if missing:
        raise InputError(f"找不到日期列（{missing[0]}）", f"no date column ('{missing[0]}')", file=str(path))
    if text and table.header_rows == [1]:
        raw = read_table(path)  # the whole file by Arrow; only lines without an ID number are looked at
        data = pd.DataFrame({name: raw.iloc[:, col].to_numpy() for name, col in table.columns.items()},
                            dtype="string")
        rows = np.arange(2, len(raw) + 2)
        blank = data[register.id_number].isna().to_numpy()
        reasons = np.full(len(raw), None, dtype=object)
        for i in np.flatnonzero(blank):
            reasons[i] = classify([None if pd.isna(v) else str(v) for v in raw.iloc[i].tolist()], id_col)
        lines, header_skips = len(raw), []
    else:
        body = grid.cells[table.first_data:]
        rows = np.asarray(grid.rows[table.first_data:], dtype=np.int64)
        data = pd.DataFrame({name: [line[col] if col < len(line) else None for line in body]
                             for name, col in table.columns.items()}, dtype="string")
        reasons = np.array([classify(line, id_col) for line in body], dtype=object)
        lines, header_skips = len(body) + len(table.skipped), table.skipped
    skip = pd.notna(reasons)
    skipped = pd.DataFrame([(int(r), _reason(k), "") for r, k in zip(rows[skip], reasons[skip], strict=True)]
                           + [(r, _reason(k), t) for r, k, t in header_skips], columns=["row", "reason", "text"])
    skipped["file"] = str(path)
    data, rows = data[~skip].reset_index(drop=True), rows[~skip]
    typed, problems = {}, []
    headers = {name: table.headers[col] for name, col in table.columns.items()}

    def problem(mask: np.ndarray, name: str, zh: str, en: str) -> None:
        if mask.any():
            problems.append(pd.DataFrame({"row": rows[mask], "household_id": "", "column": headers[name],
                                          "value": data[name][mask].fillna("").astype(str).map(mask_identities)
                                          .to_numpy(), "error": f"{zh} / {en}", "file": str(path)}))

    for name, kind in register.field_types.items():
        if name not in data:
            typed[name] = pd.Series(pd.NA if kind != "date" else pd.NaT, index=data.index,
                                    dtype="datetime64[ns]" if kind == "date" else object)
            continue
        if kind == "id_number":
            values, (masks, zh, en) = _id_numbers(data[name])
            for m, z, e in zip(masks, zh, en, strict=True):
                problem(np.asarray(m, bool), name, z, e)
            blank = data[name].isna().to_numpy()
            problem(blank, name, f"“{headers[name]}”为空", f"'{headers[name]}' is blank")
        elif kind == "date":
            values, bad = _dates(data[name])
            problem(bad, name, f"“{headers[name]}”不是日期（应为 2020-05-02）",
                    f"'{headers[name]}' is not a date (expected 2020-05-02)")
        elif kind == "number":
            values, bad, (zh, en) = _parse(data[name], Column(name, headers[name], "number"))
            problem(bad.to_numpy(), name, zh, en)
        else:
            values = data[name].str.strip().astype(object)
            if name in register.maps:
                values = values.map(lambda v, m=register.maps[name]: m.get(v, v), na_action="ignore")
        typed[name] = values
    errors = pd.concat(problems, ignore_index=True) if problems else _empty(ERROR_COLUMNS)
    records = pd.DataFrame(typed)
    records["__row"] = rows
    records = records[~records["__row"].isin(errors["row"])].reset_index(drop=True)
    return RegisterRecords(register, str(path), records, errors, skipped if len(skipped) else _empty(SKIPPED_COLUMNS),
                           lines)


def _dates(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Dates as counties write them (2018-05-02, 2018/5/2, 2018.5.2, 2018年5月2日, 20180502, with a time), in Arrow."""
    cells = pc.utf8_trim_whitespace(pc.utf8_normalize(pa.array(series.astype(object), pa.string()), form="NFKC"))
    text = pc.replace_substring_regex(cells, r"[ T].*$", "")
    text = pc.replace_substring_regex(pc.replace_substring_regex(text, "日$", ""), "[年月/.]", "-")
    text = pc.replace_substring_regex(text, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    text = pc.replace_substring_regex(text, r"-(\d)(-|$)", r"-0\1\2")
    text = pc.replace_substring_regex(text, r"-(\d)$", r"-0\1")
    parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    bad = pc.and_(pc.is_valid(cells), pc.is_null(parsed)).to_numpy(zero_copy_only=False)
    values = pd.Series(parsed.to_numpy(zero_copy_only=False), index=series.index).astype("datetime64[ns]")
    return values, np.asarray(bad, bool)


def _windows(register: Register, records: pd.DataFrame, year: pd.Series | None,
             as_of: dt.date | None) -> np.ndarray:
    """Which records fall in the rule's window: the assessment year, or the 12 months up to `as_of`."""
    date = records[register.date].to_numpy("datetime64[ns]")
    if as_of is not None:
        end = np.datetime64(pd.Timestamp(as_of), "ns")
        start = np.datetime64(pd.Timestamp(as_of) - pd.DateOffset(months=12) + pd.Timedelta(days=1), "ns")
    else:
        y = year.to_numpy(dtype="int64")
        start = (y - 1970).astype("datetime64[Y]").astype("datetime64[ns]")
        end = (y - 1969).astype("datetime64[Y]").astype("datetime64[ns]") - np.timedelta64(1, "ns")
    if register.window == "during":
        return (date >= start) & (date <= end)
    held = date <= end
    if register.until is not None:
        until = records[register.until].to_numpy("datetime64[ns]")
        held &= np.isnat(until) | (until >= start)
    return held


def apply_registers(frame: pd.DataFrame, ids: pd.DataFrame | None, reads: list[RegisterRecords], book: RuleBook,
                    year: int | None = None, as_of: dt.date | None = None) -> RegisterResult:
    """The registers' facts onto `frame` (one row per household), with evidence and contradictions."""
    if ids is None or not len(ids):
        raise InputError("户表中没有成员的证件号码，无法与部门数据比对（需全国系统导出等一人一行的表）",
                         "the household file holds no member ID numbers to match department registers by",
                         file="")
    frame = frame.reset_index(drop=True).copy()
    hid = frame["household_id"].astype(str)
    position = pd.Series(np.arange(len(frame)), index=hid.to_numpy())
    position = position[~position.index.duplicated()]
    years = _years(frame, year) if as_of is None else None
    index = ids.assign(household_id=ids["household_id"].astype(str)).drop_duplicates()
    index = index[index["household_id"].isin(position.index)]
    facts: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}  # name -> (values, known, type)
    origin: dict[str, list[tuple[Register, np.ndarray]]] = {}  # fact -> registers with a record per household
    evidence, unmatched, accounts, matched_parts = [], [], [], []
    n = len(frame)
    for read in reads:
        register = read.register
        recs = read.records.merge(index, left_on=register.id_number, right_on="id_number", how="left",
                                  suffixes=("", "__ids"))
        none = recs["household_id"].isna().to_numpy()
        if none.any():
            unmatched.append(_listing(recs[none], register, read.file, "未找到对应的户 / matches no household"))
        recs = recs[~none].reset_index(drop=True)
        where = position.reindex(recs["household_id"].to_numpy()).to_numpy(dtype=np.int64)
        inside = _windows(register, recs, years.iloc[where] if years is not None else None, as_of)
        outside = int((~inside).sum())
        recs, where = recs[inside].reset_index(drop=True), where[inside]
        matched_parts.append(recs.assign(__register=register.name, __file=read.file))
        env = {name: column_vec(recs[name], register.types[name]) for name in register.reads if name in recs}
        evaluator = _Evaluator(book, "household", Evaluation(book, "household", len(recs), env), None)
        used = np.zeros(len(recs), bool)
        for fact in register.facts.values():
            select = evaluator.eval(fact.when).full(len(recs)).true() if fact.when is not None \
                else np.ones(len(recs), bool)
            if fact.function in ("any", "count"):
                hit = select & evaluator.eval(fact.expr).full(len(recs)).true()
                counts = np.bincount(where[hit], minlength=n)
                values = counts > 0 if fact.function == "any" else counts.astype(float)
            elif fact.function == "sum":
                amount = evaluator.eval(fact.expr).full(len(recs))
                amounts = np.where(np.asarray(amount.known, bool), np.asarray(amount.values, float), 0.0)
                hit = select & (amounts != 0)
                counts = np.bincount(where[hit], minlength=n)
                values = np.bincount(where[hit], weights=amounts[hit], minlength=n)
            else:
                hit = select
                counts = np.bincount(where[hit], minlength=n)
                values = np.where(counts > 0, fact.label, None).astype(object)
            known = counts > 0 if not register.complete else np.ones(n, bool)
            if fact.function == "label":
                known = counts > 0
            facts[fact.name] = _combine(facts.get(fact.name), (values, known, fact.type), counts > 0)
            origin.setdefault(fact.name, []).append((register, counts > 0))
            used |= hit
            if hit.any():
                evidence.append(_evidence(recs[hit], register, fact.name, fact.citation, read.file))
        accounts.append({"file": read.file, "register": register.name, "title": register.title.zh,
                         "lines": read.lines, "matched": len(recs), "used": int(used.sum()),
                         "outside_window": outside, "unmatched": int(none.sum()),
                         "skipped": len(read.skipped), "error_lines": int(read.errors["row"].nunique())})
    contradictions = []
    for name, (values, known, kind) in facts.items():
        if name not in CONTRACT:
            continue
        frame[name], contradiction = _merge_column(frame, name, values, known, kind, origin[name])
        if contradiction is not None:
            contradictions.append(contradiction)
    frame, derived_evidence, derived_contradictions = _derive(frame, facts, origin, reads, book, evidence)
    evidence += derived_evidence
    contradictions += derived_contradictions
    evidence_frame = pd.concat(evidence, ignore_index=True) if evidence else _empty(EVIDENCE_COLUMNS)
    result = RegisterResult(
        frame, evidence_frame, _empty(CONTRADICTION_COLUMNS), pd.concat(unmatched, ignore_index=True) if unmatched
        else _empty(UNMATCHED_COLUMNS),
        pd.concat([r.errors for r in reads], ignore_index=True) if reads else _empty(ERROR_COLUMNS),
        pd.concat([r.skipped for r in reads], ignore_index=True) if reads else _empty(SKIPPED_COLUMNS),
        accounts, matched_parts)
    if contradictions:
        table = pd.concat(contradictions, ignore_index=True)
        ev = result.evidence
        key = ev["household_id"].astype(str) + "\x00" + ev["column"].astype(str)
        text = ev.assign(key=key).drop_duplicates(["key", "text"]).groupby("key", sort=False)["text"].agg("；".join)
        table["evidence"] = (table["household_id"].astype(str) + "\x00" + table["__column"]).map(text).fillna("")
        table = table.drop(columns="__column")
        result.contradictions = table[list(CONTRADICTION_COLUMNS)]
    return result


def _years(frame: pd.DataFrame, year: int | None) -> pd.Series:
    years = pd.to_numeric(frame["year"], errors="coerce") if "year" in frame else pd.Series(np.nan, index=frame.index)
    if year is not None:
        years = years.fillna(year)
    if years.isna().any():
        raise InputError("与部门数据比对需要评估年度（表中无“年度”时请用 --year 指定）",
                         "matching department registers needs the assessment year (give --year)")
    return years.astype("int64")


def _combine(old: tuple | None, new: tuple, _: np.ndarray) -> tuple:
    if old is None:
        return new
    (a, ka, kind), (b, kb, _k) = old, new
    if kind == "bool":
        return (np.asarray(a, bool) | np.asarray(b, bool)), ka | kb, kind
    if kind == "number":
        return np.where(ka, a, 0.0) + np.where(kb, b, 0.0), ka | kb, kind
    return np.where(ka, a, b), ka | kb, kind


def _typed_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A contract column as typed values (the contract layout's frame still holds text)."""
    column = CONTRACT[name]
    if name not in frame:
        return pd.Series(pd.NA if column.type != "number" else np.nan, index=frame.index,
                         dtype="boolean" if column.type == "bool" else None)
    series = frame[name]
    if pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
        series = _parse(series.astype("string"), column)[0]
    return series


def _merge_column(frame: pd.DataFrame, name: str, values: np.ndarray, known: np.ndarray, kind: str,
                  origin: list) -> tuple[pd.Series, pd.DataFrame | None]:
    """The register's value where it holds one; the file's where the register is silent; differences listed.

    A flag holds when either the file or a register says so (a register's record is proof; its silence about
    a flag the file states is listed, not used to clear it).
    """
    current = _typed_column(frame, name)
    file_known = current.notna().to_numpy()
    if kind == "bool":
        file_values = current.fillna(False).to_numpy(dtype=bool)
        reg = np.asarray(values, bool)
        out = np.where(reg, True, np.where(file_known, file_values, reg))
        out_known = reg | file_known | known
        differ = file_known & known & (file_values != reg)
        series = pd.Series(pd.array(out, dtype="boolean")).where(out_known, pd.NA)
        file_shown, reg_shown = np.where(file_values, "是", "否"), np.where(reg, "是", "否")
    elif kind == "number":
        file_values = pd.to_numeric(current, errors="coerce").to_numpy(dtype=float)
        has = np.zeros(len(frame), bool)
        for _, mask in origin:
            has |= mask
        reg = np.asarray(values, float)
        out = np.where(has, reg, np.where(file_known, file_values, np.where(known, reg, np.nan)))
        differ = file_known & has & (np.abs(np.nan_to_num(file_values) - reg) > 0.5)
        series = pd.Series(out)
        file_shown, reg_shown = np.round(file_values, 2), np.round(reg, 2)
    else:
        file_values = current.astype(object).to_numpy()
        out = np.where(known, values, file_values)
        differ = file_known & known & (file_values.astype(str) != np.asarray(values).astype(str))
        series = pd.Series(out, dtype=object).where(pd.notna(out), None)
        file_shown, reg_shown = file_values, values
    if not differ.any():
        return series, None
    return series, pd.DataFrame({"__column": name,
                                 "household_id": frame["household_id"].astype(str).to_numpy()[differ],
                                 "column": f"{CONTRACT[name].zh}（{name}）",
                                 "file_value": np.asarray(file_shown, dtype=object)[differ],
                                 "register_value": np.asarray(reg_shown, dtype=object)[differ],
                                 "evidence": "",
                                 "register_file": "、".join(dict.fromkeys(Path(r.file).name for r, _ in origin))})


def _derive(frame: pd.DataFrame, facts: dict, origin: dict, reads: list[RegisterRecords], book: RuleBook,
            evidence: list[pd.DataFrame]) -> tuple[pd.DataFrame, list[pd.DataFrame], list[pd.DataFrame]]:
    derived_evidence, contradictions = [], []
    for read in reads:
        register = read.register
        if not register.derive:
            continue
        env: dict[str, Vec] = {}
        for name, node in register.derive.items():
            from povertyrules.lang import expr as ex

            for used in ex.names(node):
                if used in facts:
                    values, known, _ = facts[used]
                    env[used] = Vec(values, known)
                elif used in CONTRACT and used not in env:
                    env[used] = column_vec(_typed_column(frame, used), CONTRACT[used].type)
            evaluator = _Evaluator(book, "household", Evaluation(book, "household", len(frame), env), None)
            v = evaluator.eval(node).full(len(frame))
            new = _series(v, register.derive_types[name])
            old = _typed_column(frame, name)
            known = new.notna().to_numpy().copy()
            has = np.zeros(len(frame), bool)  # only households a record of this register speaks about
            for used in ex.names(node):
                for source, mask in origin.get(used, []):
                    if source is register:
                        has |= mask
            known &= has
            changed = known & (old.isna().to_numpy() | (old.astype(str).to_numpy() != new.astype(str).to_numpy()))
            if CONTRACT[name].kind == "int":
                changed = known & ~(pd.to_numeric(old, errors="coerce").to_numpy() == new.to_numpy(dtype=float))
            frame[name] = new.where(known, old)
            hids = set(frame["household_id"].astype(str).to_numpy()[changed])
            sources = [e for e in evidence if len(e) and e["column"].iloc[0] in ex.names(node)]
            for e in sources:
                rows = e[e["household_id"].isin(hids)]
                if len(rows):
                    derived_evidence.append(rows.assign(column=name))
            differs = changed & old.notna().to_numpy()
            if differs.any():
                contradictions.append(pd.DataFrame({
                    "__column": name, "household_id": frame["household_id"].astype(str).to_numpy()[differs],
                    "column": f"{CONTRACT[name].zh}（{name}）",
                    "file_value": old.to_numpy(dtype=object)[differs],
                    "register_value": new.to_numpy(dtype=object)[differs], "evidence": "",
                    "register_file": Path(read.file).name}))
    return frame, derived_evidence, contradictions


def _masked(ids: pd.Series) -> pd.Series:
    return mask_id_numbers(ids)


def _render(records: pd.DataFrame, register: Register) -> pd.Series:
    text = pd.Series("", index=records.index, dtype=object)
    for literal, name in register.evidence:
        text = text + literal
        if name is not None:
            text = text + _shown(records[name], register.field_types[name])
    return text


def _shown(values: pd.Series, kind: str) -> pd.Series:
    if kind == "date":
        text = pc.strftime(pa.array(values, pa.timestamp("ns")), format="%Y-%m-%d")
        return pd.Series(pc.fill_null(text, "（无日期）").to_numpy(zero_copy_only=False), index=values.index)
    if kind == "number":
        text = pc.cast(pc.round(pa.array(pd.to_numeric(values), pa.float64()), 2), pa.string())
        return pd.Series(pc.fill_null(text, "").to_numpy(zero_copy_only=False), index=values.index)
    return values.fillna("").astype(str).astype(object)


def _evidence(records: pd.DataFrame, register: Register, column: str, citation: str, file: str) -> pd.DataFrame:
    member = _masked(records[register.id_number])
    body = _render(records, register)
    text = citation + " " + register.title.zh + "：" + body + "，成员 " + member
    return pd.DataFrame({"household_id": records["household_id"].astype(str).to_numpy(), "column": column,
                         "clause": citation, "register": register.name,
                         "kind": _shown(records[register.kind], "text").to_numpy() if register.kind else "",
                         "date": _shown(records[register.date], "date").to_numpy(), "member": member.to_numpy(),
                         "text": text.to_numpy(), "file": file, "row": records["__row"].to_numpy()})


def _listing(records: pd.DataFrame, register: Register, file: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"row": records["__row"].to_numpy(), "register": register.title.zh,
                         "kind": _shown(records[register.kind], "text").to_numpy() if register.kind else "",
                         "date": _shown(records[register.date], "date").to_numpy(),
                         "member": _masked(records[register.id_number]).to_numpy(), "reason": reason, "file": file})


def unmatched_summary(unmatched: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(register, kind, count) of the records that match no household."""
    if not len(unmatched):
        return []
    counts = unmatched.groupby(["register", "kind"], sort=True).size()
    return [(r, k or "—", int(c)) for (r, k), c in counts.items()]
