"""A county file as it is → household rows in the contract's columns, with every line accounted for.

`prepare` reads the sheet, finds the header and the layout (`table.py`), sets aside the lines that are not
households, parses each field as its layout declares, groups person rows into households (household fields
must agree across a household's rows), aggregates person facts, derives contract columns in the rule
language, joins side sheets (`join`), and lists what the file holds twice and does not agree on (`checks`).
Every line of the sheet below the header ends up in exactly one place: a household that is scored, the
skipped lines (with the reason) or the errors (with the sheet's own row number and header).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from povertyrules.engines.vectorized import Evaluation, Vec, _Evaluator, column_vec
from povertyrules.errors import InputError
from povertyrules.io.sheets import Grid, read_grid, sheet_names, sniff
from povertyrules.io.tables import MEMBER_SHEETS, read_table
from povertyrules.lang.rulebook import RuleBook
from povertyrules.layouts.spec import CONTRACT, Layout, load_layout, load_layouts
from povertyrules.layouts.table import SIGNATURE, SKIP_REASONS, TOTAL, Table, classify, find_table
from povertyrules.model.columns import ERROR_COLUMNS
from povertyrules.model.members import household_sizes, parse_members
from povertyrules.model.records import _parse
from povertyrules.privacy import id_number_problem
from povertyrules.privacy import mask_text as mask_identities

SKIPPED_COLUMNS = ("row", "reason", "text", "file")
JOIN = "__join_key"  # the side sheet's join key, carried beside its columns
CHECK_COLUMNS = ("row", "household_id", "check", "computed", "recorded", "description", "file")


@dataclass
class Prepared:
    """Household rows ready for `povertyrules.score`, and where every other line of the file went."""

    frame: pd.DataFrame  # contract columns (text for the contract layout, typed otherwise)
    rows: np.ndarray  # the sheet row of each household (its first line)
    layout: Layout
    table: Table
    file: str
    lines: int  # lines of the sheet other than the header
    skipped: pd.DataFrame  # SKIPPED_COLUMNS
    errors: pd.DataFrame  # ERROR_COLUMNS
    checks: pd.DataFrame  # CHECK_COLUMNS
    members: pd.DataFrame | None = None  # a members sheet (contract layout workbooks)
    household_rows: pd.Series | None = None  # household id -> number of sheet lines it spans
    ids: pd.DataFrame | None = None  # id_number -> household_id, for joins by a member's ID number
    joined: list[dict] = field(default_factory=list)  # per side sheet: file, layout, rows, matched, errors
    blank_as_zero: list[str] = field(default_factory=list)

    def release_frame(self) -> pd.DataFrame:
        """The household rows, handed over: `frame` is emptied (its columns kept), so the caller holds the only
        reference and the text cells can be freed as soon as they are typed."""
        frame, self.frame = self.frame, self.frame.iloc[:0]
        return frame

    def lines_of(self, household_ids: pd.Series) -> int:
        """How many sheet lines the given households span."""
        if self.household_rows is None:
            return len(household_ids)
        return int(self.household_rows.reindex(household_ids.astype(str)).fillna(1).sum())


def layouts_folder(book: RuleBook) -> Path:
    return Path(book.root) / "layouts"


def resolve_layout(name: str | Path | None, book: RuleBook) -> Layout | None:
    """A layout named in the rules' layouts folder, or a layout file; None means "recognise it"."""
    if name is None:
        return None
    layouts = load_layouts(layouts_folder(book))
    if str(name) in layouts:
        return layouts[str(name)]
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_layout(path)
    raise InputError(f"未知的表格格式“{name}”（可选：{'、'.join(sorted(layouts))}，或一个格式文件）",
                     f"unknown layout '{name}' (one of {', '.join(sorted(layouts))}, or a layout file)")


def prepare(path: Path | str, book: RuleBook, layout: str | Path | None = None,
            joins: list[Path | str] | None = None, members: Path | str | None = None,
            arrow_text: bool = False) -> Prepared:
    """Read `path` as it is and return its households in the contract's columns (see the module docstring).

    `arrow_text`: a contract CSV's cells stay the Arrow strings read (``pd.ArrowDtype(pa.string())``, no copy),
    for a caller that only types them (`povertyrules.score`); otherwise they are pandas ``string`` columns."""
    path = Path(path)
    layouts = load_layouts(layouts_folder(book))
    forced = resolve_layout(layout, book)
    if not path.is_file():
        raise InputError("文件不存在", "file not found", file=str(path))
    sheet = _household_sheet(path)
    text = sniff(path) in ("csv", "parquet")
    grid = read_grid(path, sheet, limit=40 if text else None)  # a workbook is read whole once anyway
    table = find_table(grid, layouts, forced)
    if text and _is_pass_through(table.layout) and table.header_rows == [1]:
        # the contract layout as Arrow reads it: no grid
        prepared = _contract_fast(path, sheet, table, arrow_text and not joins)
    else:
        if text:
            grid = read_grid(path, sheet)
            table = find_table(grid, layouts, table.layout)
        prepared = _from_grid(grid, table, book)
    prepared.frame = prepared.frame.drop(columns=[JOIN], errors="ignore")
    if members is not None:
        prepared.members = read_table(members)
    elif _is_pass_through(table.layout):
        prepared.members = _member_sheet(path)
    for side in joins or []:
        join(prepared, side, book, layouts)
    return prepared


def _household_sheet(path: Path) -> str | int:
    names = sheet_names(path)
    others = [n for n in names if n.strip().lower() not in MEMBER_SHEETS]
    return others[0] if others and names and names[0].strip().lower() in MEMBER_SHEETS else 0


def _member_sheet(path: Path) -> pd.DataFrame | None:
    found = next((n for n in sheet_names(path) if n.strip().lower() in MEMBER_SHEETS), None)
    return read_table(path, found) if found else None


def _is_pass_through(layout: Layout) -> bool:
    """The contract's own layout: cells go to `score` as they are, parsed by the contract."""
    return all(f.column is CONTRACT.get(f.name) for f in layout.fields.values()) and not layout.derive \
        and not layout.aggregate


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _contract_fast(path: Path, sheet: str | int, table: Table, arrow_text: bool = False) -> Prepared:
    """The contract layout with its header on line 1: read by Arrow; only footer lines are looked at."""
    frame = read_table(path, sheet, arrow_text)
    rows = np.arange(2, len(frame) + 2)
    key = table.headers[table.columns[table.layout.key]]
    # only lines without a household id, or whose 户编号 cell reads 合计 or 填表人…, can be totals, signatures or
    # blank lines
    if key in frame:
        text = frame[key].astype("string")
        # a plain id (letters and digits only, found in one Arrow pass) is no 合计 or 填表人 line: only the other
        # cells are searched with the patterns (Python's, whose \s Arrow's RE2 does not share)
        cells = pa.array(text, type=pa.string(), from_pandas=True)
        plain = np.asarray(pc.fill_null(pc.match_substring_regex(cells, r"^[0-9A-Za-z]+$"), True), dtype=bool)
        other = text[~plain]
        odd = np.zeros(len(frame), dtype=bool)
        odd[~plain] = (other.str.contains(TOTAL.pattern, regex=True)
                       | other.str.contains(SIGNATURE.pattern, regex=True)).fillna(False).to_numpy(dtype=bool)
        suspicious = np.flatnonzero(frame[key].isna().to_numpy() | odd)
    else:
        suspicious = np.flatnonzero(frame.isna().all(axis=1).to_numpy())
    reasons = np.full(len(frame), None, dtype=object)
    for i in suspicious:
        row = [None if pd.isna(v) else str(v) for v in frame.iloc[i].tolist()]
        reasons[i] = classify(row, table.columns[table.layout.key])
    skip = pd.notna(reasons)
    # the text shown for a skipped line: its first three cells (joined for those lines only, not for every line)
    first = frame.iloc[np.flatnonzero(skip), : min(3, frame.shape[1])].astype("string")
    joined = first.fillna("").agg(" ".join, axis=1).str.strip() if len(first) else pd.Series([], dtype=object)
    skipped = pd.DataFrame({"row": rows[skip], "reason": [_reason(r) for r in reasons[skip]],
                            "text": joined.to_numpy(), "file": str(path)})
    kept = frame.iloc[np.flatnonzero(~skip) if skip.any() else slice(None), list(table.columns.values())]
    kept = kept.set_axis(list(table.columns), axis=1)
    kept = kept.reset_index(drop=True)
    return Prepared(kept, rows[~skip], table.layout, table, str(path), len(frame), skipped,
                    _empty(ERROR_COLUMNS), _empty(CHECK_COLUMNS))


def _reason(key: str) -> str:
    zh, en = SKIP_REASONS[key]
    return f"{zh} / {en}"


def _from_grid(grid: Grid, table: Table, book: RuleBook) -> Prepared:
    layout = table.layout
    lines = grid.cells[table.first_data:]
    rows = np.asarray(grid.rows[table.first_data:], dtype=np.int64)
    key_col = table.columns[layout.key]
    reasons = [classify(line, key_col) for line in lines]
    skip = np.array([r is not None for r in reasons], dtype=bool)
    skipped = [(int(rows[i]), _reason(r), " ".join(c for c in lines[i] if c)[:200])
               for i, r in enumerate(reasons) if r is not None]
    skipped += [(r, _reason(k), t) for r, k, t in table.skipped]
    width = len(table.headers)
    kept = [line for line, s in zip(lines, skip, strict=True) if not s]
    data = pd.DataFrame([[*line[:width], *([None] * (width - len(line)))] for line in kept],
                        columns=range(width), dtype=object) if kept else pd.DataFrame(columns=range(width))
    rows = rows[~skip]
    skipped_frame = pd.DataFrame(sorted(skipped), columns=["row", "reason", "text"]).assign(file=grid.file)
    if _is_pass_through(layout):  # the contract's own columns: let `score` parse them under their headers
        frame = data[list(table.columns.values())].set_axis(list(table.columns), axis=1).astype("string")
        return Prepared(frame.reset_index(drop=True), rows, layout, table, grid.file, len(lines) + len(table.skipped),
                        skipped_frame, _empty(ERROR_COLUMNS), _empty(CHECK_COLUMNS))
    return _households(data, rows, table, book, grid.file, len(lines) + len(table.skipped), skipped_frame)


def _households(data: pd.DataFrame, rows: np.ndarray, table: Table, book: RuleBook, file: str, lines: int,
                skipped: pd.DataFrame) -> Prepared:
    layout = table.layout
    n = len(data)
    index = pd.RangeIndex(n)
    raw = {name: pd.Series(data[col].to_numpy(), index=index, dtype="string")
           for name, col in table.columns.items()}
    header_of = {name: table.headers[col] for name, col in table.columns.items()}
    keys = raw[layout.key].str.strip()
    typed: dict[str, pd.Series] = {}
    problems: list[pd.DataFrame] = []

    def problem(mask: np.ndarray, name: str, values: pd.Series, zh: str, en: str) -> None:
        if not mask.any():
            return
        shown = values[mask].fillna("").astype(str).map(mask_identities)
        problems.append(pd.DataFrame({"row": rows[mask], "household_id": keys[mask].fillna("").to_numpy(),
                                      "column": header_of.get(name, name), "value": shown.to_numpy(),
                                      "error": f"{zh} / {en}", "file": file}))

    for name, f in layout.fields.items():
        if name not in raw:
            continue
        if f.id_number:
            values, (bad, zh, en) = _id_numbers(raw[name])
            for mask, z, e in zip(bad, zh, en, strict=True):
                problem(mask, name, raw[name], z, e)
        else:
            values, bad, (zh, en) = _parse(raw[name], f.column)
            problem(bad.to_numpy(), name, raw[name], zh, en)
            if f.blank == "zero":
                values = values.where(values.notna() | bad, 0.0)
        typed[name] = values
    problem(keys.isna().to_numpy(), layout.key, raw[layout.key], f"“{header_of[layout.key]}”为空",
            f"'{header_of[layout.key]}' is blank")
    errors = pd.concat(problems, ignore_index=True) if problems else _empty(ERROR_COLUMNS)
    frame = pd.DataFrame(typed, index=index)
    frame[layout.key] = keys
    frame["__row"] = rows
    checks: list[pd.DataFrame] = []
    if layout.grain == "person":
        frame, errors, household_rows, ids = _group(frame, layout, book, errors, header_of, file)
    else:
        household_rows, ids = None, _id_index(frame, layout)
        frame = frame[~frame["__row"].isin(errors["row"])].reset_index(drop=True)
    env = _env(frame, layout)
    evaluator = _Evaluator(book, "household", Evaluation(book, "household", len(frame), env), None)
    for name, node in layout.derive.items():
        v = evaluator.eval(node).full(len(frame))
        env[name] = v
        frame[name] = _series(v, layout.types[name])
    for check, left, right in layout.checks:
        a, b = evaluator.eval(left).full(len(frame)), evaluator.eval(right).full(len(frame))
        both = np.asarray(a.known, bool) & np.asarray(b.known, bool)
        with np.errstate(invalid="ignore"):
            off = both & (np.abs(np.asarray(a.values, float) - np.asarray(b.values, float)) > check.tolerance)
        if off.any():
            checks.append(pd.DataFrame({
                "row": frame["__row"].to_numpy()[off], "household_id": frame[layout.key].to_numpy()[off],
                "check": check.id, "computed": np.round(np.asarray(a.values, float)[off], 2),
                "recorded": np.round(np.asarray(b.values, float)[off], 2),
                "description": f"{check.description.zh} / {check.description.en}", "file": file}))
    out = pd.DataFrame({name: frame[name] for name in layout.outputs() if name in frame})
    if "household_id" not in out:
        out["household_id"] = frame[layout.key]
    if layout.join_key and layout.join_key in frame:
        out[JOIN] = frame[layout.join_key]
    return Prepared(out.reset_index(drop=True), frame["__row"].to_numpy(dtype=np.int64), layout, table, file,
                    lines, skipped, errors,
                    pd.concat(checks, ignore_index=True) if checks else _empty(CHECK_COLUMNS),
                    household_rows=household_rows, ids=ids, blank_as_zero=layout.blank_as_zero())


def _env(frame: pd.DataFrame, layout: Layout) -> dict[str, Vec]:
    """Every name a layout expression may read: the file's columns, and unknown for those it lacks."""
    blank = {"number": 0.0, "bool": False, "text": ""}
    env = {name: Vec(blank[kind], False) for name, kind in layout.types.items()}
    env.update({name: column_vec(frame[name], layout.types.get(name, "text")) for name in frame.columns
                if name != "__row"})
    return env


def _series(v: Vec, kind: str) -> pd.Series:
    known = np.asarray(v.known, bool)
    if kind == "bool":
        return pd.Series(pd.array(np.asarray(v.values, bool), dtype="boolean")).where(known, pd.NA)
    if kind == "number":
        return pd.Series(np.where(known, np.asarray(v.values, float), np.nan))
    return pd.Series(np.asarray(v.values, dtype=object)).where(known, None)


#: how a spreadsheet shows an ID number it stored as a number: its last digits are already lost
SCIENTIFIC = r"^\d(\.\d+)?E\+?\d+$"
STORED_AS_NUMBER = ("证件号码被存为数字，末几位已丢失（请将该列设为文本后重新导出）",
                    "the ID number was saved as a number and has lost its last digits (export the column as text)")


def _id_numbers(series: pd.Series) -> tuple[pd.Series, tuple[list[np.ndarray], list[str], list[str]]]:
    """ID numbers (NFKC, upper case) and the masks of bad ones, each with its message in Chinese and English:
    stored as a number, or not a GB 11643 number (`povertyrules.privacy.id_number_problem`)."""
    import unicodedata

    text = series.map(lambda c: unicodedata.normalize("NFKC", str(c)).strip().upper(), na_action="ignore")
    present = text.notna().to_numpy()
    scientific = present & text.fillna("").astype(str).str.fullmatch(SCIENTIFIC).to_numpy()
    checked = text[present & ~scientific]
    verdicts = checked.map(dict(zip(u := checked.unique(), map(id_number_problem, u), strict=True)))
    masks, zh, en = [scientific], [STORED_AS_NUMBER[0]], [STORED_AS_NUMBER[1]]
    for message in verdicts.dropna().unique():
        english, _, chinese = str(message).partition(" / ")
        masks.append(text.index.isin(verdicts.index[verdicts == message]))
        zh.append(chinese or english)
        en.append(english)
    bad = np.zeros(len(series), bool)
    for m in masks:
        bad |= m
    return text.where(~bad, None).astype(object), (masks, zh, en)


def _id_index(frame: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Every ID number the file holds (members' or the householder's) → its household."""
    parts = [pd.DataFrame({"id_number": frame[name], "household_id": frame[layout.key]})
             for name, f in layout.fields.items() if f.id_number and name in frame]
    if not parts:
        return pd.DataFrame({"id_number": pd.Series(dtype=object), "household_id": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True).dropna().drop_duplicates()


def _group(frame: pd.DataFrame, layout: Layout, book: RuleBook, errors: pd.DataFrame, header_of: dict[str, str],
           file: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.DataFrame]:
    """Person rows → one row per household: fields must agree, person facts aggregate, ID-1 counts members."""
    key = layout.key
    problems = [errors]
    frame = frame[frame[key].notna()]
    household_fields = [n for n, f in layout.fields.items() if f.per == "household" and n in frame and n != key]
    grouped = frame.groupby(key, sort=False)
    spans = grouped.size()
    if household_fields:
        distinct = grouped[household_fields].nunique(dropna=True)
        for name in household_fields:
            bad_ids = distinct.index[distinct[name].to_numpy() > 1]
            if len(bad_ids):
                rows = frame[frame[key].isin(bad_ids)]
                listed = rows.groupby(key, sort=False)["__row"].agg(lambda r: "、".join(map(str, r)))
                shown = rows.groupby(key, sort=False)[name].agg(
                    lambda v: " / ".join(dict.fromkeys(mask_identities(str(x)) for x in v.dropna())))
                problems.append(pd.DataFrame({
                    "row": rows.groupby(key, sort=False)["__row"].min().to_numpy(), "household_id": listed.index,
                    "column": header_of[name], "value": shown.to_numpy(),
                    "error": [f"同一户各行的“{header_of[name]}”不一致（第{r}行） / '{header_of[name]}' differs "
                              f"between this household's rows ({r.replace('、', ', ')})" for r in listed],
                    "file": file}))
    errors = pd.concat(problems, ignore_index=True)
    failed = set(errors["household_id"].astype(str)) & set(frame[key])
    if failed:  # the other lines of a household with an error are listed too, so every line is accounted for
        other = frame[frame[key].isin(failed) & ~frame["__row"].isin(errors["row"])]
        if len(other):
            errors = pd.concat([errors, pd.DataFrame({
                "row": other["__row"].to_numpy(), "household_id": other[key].to_numpy(), "column": header_of[key],
                "value": other[key].to_numpy(),
                "error": "同户其他行有误，本户未计分 / another line of this household has an error; not scored",
                "file": file})], ignore_index=True)
    ids = _id_index(frame, layout)
    vecs = _env(frame, layout)
    evaluator = _Evaluator(book, "household", Evaluation(book, "household", len(frame), vecs), None)
    codes = grouped.ngroup().to_numpy()
    households = grouped[["__row", *household_fields]].first()
    households["__row"] = grouped["__row"].min()
    for name, (fn, node) in layout.aggregate.items():
        households[name] = _aggregate(fn, evaluator.eval(node).full(len(frame)), codes, len(households)).to_numpy()
    if layout.members:
        sheet = pd.DataFrame({name: _series(evaluator.eval(node).full(len(frame)), layout.types[f"members.{name}"])
                              for name, node in layout.members.items()})
        sheet["household_id"] = frame[key].to_numpy()
        sizes = household_sizes(book, parse_members(sheet.astype("string"), file))
        households["id1_members"] = households.index.map(sizes.members).astype(float)
    households = households.reset_index()
    households = households[~households[key].isin(failed)].reset_index(drop=True)
    return households, errors, spans, ids


def _aggregate(fn: str, v: Vec, codes: np.ndarray, groups: int) -> pd.Series:
    known = np.asarray(v.known, bool)
    unknown = np.bincount(codes, weights=~known, minlength=groups) > 0
    if fn == "sum":
        total = np.bincount(codes, weights=np.where(known, np.asarray(v.values, float), 0.0), minlength=groups)
        return pd.Series(np.where(unknown, np.nan, total))
    true = np.bincount(codes, weights=known & np.asarray(v.values, bool), minlength=groups)
    false = np.bincount(codes, weights=known & ~np.asarray(v.values, bool), minlength=groups)
    if fn == "count":
        return pd.Series(np.where(unknown, np.nan, true))
    if fn == "any":
        values, decided = true > 0, (true > 0) | ~unknown
    else:
        values, decided = false == 0, (false > 0) | ~unknown
    return pd.Series(pd.array(values, dtype="boolean")).where(decided, pd.NA)


def join(prepared: Prepared, side: Path | str, book: RuleBook, layouts: dict[str, Layout]) -> None:
    """Bring a side sheet's columns onto the households, by 户编号 or by a member's ID number.

    Side lines that match no household, or that match one already matched, are errors of the side file;
    nothing is dropped. A value the households already have is kept; a disagreement is listed in `checks`.
    """
    side = Path(side)
    grid = read_grid(side, _household_sheet(side))
    table = find_table(grid, layouts)
    other = _from_grid(grid, table, book)
    layout = other.layout
    frame, rows = other.frame.copy(), other.rows
    if JOIN in frame and prepared.ids is not None:
        values = frame.pop(JOIN)
        by = values.map(dict(zip(prepared.ids["id_number"], prepared.ids["household_id"], strict=True)))
        key_header = table.headers[table.columns[layout.join_key or layout.key]]
    else:
        by = values = frame["household_id"]
        key_header = table.headers[table.columns[layout.key]]
    kept_rows = rows
    known = set(prepared.frame["household_id"].astype(str))
    unmatched = by.isna().to_numpy() | ~by.astype(str).isin(known).to_numpy()
    repeated = by.notna().to_numpy() & by.duplicated(keep=False).to_numpy() & ~unmatched
    errors = [other.errors]
    for mask, zh, en in ((unmatched, "未找到对应的户（未并入）", "matches no household (not joined)"),
                         (repeated, "多行对应同一户（均未并入）",
                          "several lines match the same household (none joined)")):
        if mask.any():
            errors.append(pd.DataFrame({"row": kept_rows[mask], "household_id": by[mask].fillna("").to_numpy(),
                                        "column": key_header,
                                        "value": values[mask].fillna("").astype(str).map(mask_identities).to_numpy(),
                                        "error": f"{zh} / {en}", "file": str(side)}))
    use = ~(unmatched | repeated)
    brought = frame.loc[use].drop(columns=["household_id"], errors="ignore")
    brought.index = by[use].astype(str).to_numpy()
    base = prepared.frame.set_index(prepared.frame["household_id"].astype(str))
    checks = [prepared.checks]
    for column in brought.columns:
        incoming = brought[column].reindex(base.index)
        if column in base:
            both = base[column].notna() & incoming.notna()
            differ = both & (base[column].astype(str) != incoming.astype(str))
            if differ.any():
                checks.append(pd.DataFrame({"row": prepared.rows[differ.to_numpy()],
                                            "household_id": base.index[differ], "check": f"join:{column}",
                                            "computed": base[column][differ].to_numpy(),
                                            "recorded": incoming[differ].to_numpy(),
                                            "description": f"主表与{side.name}不一致 / main file and "
                                                           f"{side.name} differ",
                                            "file": str(side)}))
            base[column] = base[column].where(base[column].notna(), incoming)
        else:
            base[column] = incoming
    prepared.frame = base.reset_index(drop=True)
    prepared.checks = pd.concat([c for c in checks if len(c)], ignore_index=True) if any(
        len(c) for c in checks) else _empty(CHECK_COLUMNS)
    side_errors = pd.concat(errors, ignore_index=True)
    prepared.errors = pd.concat([prepared.errors, side_errors], ignore_index=True)
    prepared.skipped = pd.concat([prepared.skipped, other.skipped], ignore_index=True)
    prepared.joined.append({"file": str(side), "layout": layout.name, "lines": other.lines,
                            "matched": int(use.sum()), "skipped": len(other.skipped),
                            "error_lines": int(side_errors["row"].nunique()) if len(side_errors) else 0})


def account(prepared: Prepared, decisions: pd.DataFrame, score_errors: pd.DataFrame) -> dict[str, int]:
    """Where the file's lines went: decided households' lines + skipped + lines with errors = all lines."""
    own = score_errors[score_errors["file"] == prepared.file]
    early = prepared.errors[prepared.errors["file"] == prepared.file]
    if prepared.household_rows is not None:  # person rows: a household's lines share its fate
        decided = prepared.lines_of(decisions["household_id"])
        failed = prepared.lines_of(pd.Series(own["household_id"].astype(str).unique()))
    else:
        decided, failed = len(decisions), int(own["row"].nunique())
    skipped = int((prepared.skipped["file"] == prepared.file).sum())
    return {"lines": prepared.lines, "households": len(decisions), "decided_lines": decided, "skipped": skipped,
            "error_lines": failed + int(early["row"].nunique())}
