"""Decision files for people and for programs.

``lang="en"`` writes the contract's English column names and status codes, stable for programs (every
contract column kept, extensions after them). ``lang="zh"`` writes what a county clerk reads: Chinese headers
(`columns.yaml`) and Chinese values — decision outcomes and monitoring triggers labelled from the rule files,
other coded values from `columns.yaml` — and leaves out the packed trace. Nothing here names a policy
outcome: labels come from data files.

An xlsx decisions file is streamed as it is produced, a block of rows at a time (`workbook`, bounded memory):
the decisions sheet with a frozen header, column widths and filters; with full reasons, a second sheet with
one row per household and cited rule; and a summary sheet of households per township and status.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import yaml

from povertyrules.lang.rulebook import RuleBook
from povertyrules.model.columns import HOUSEHOLD_COLUMNS, MEMBER_COLUMNS

DECISIONS = ("identification", "exit", "monitoring")


@cache
def labels() -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).with_name("columns.yaml")).read_text(encoding="utf-8"))


def localize(frame: pd.DataFrame, book: RuleBook, lang: str) -> pd.DataFrame:
    """A decisions frame as a reader of `lang` sees it (``en``: unchanged)."""
    if lang != "zh":
        return frame
    out = frame.drop(columns=[c for c in ("trace",) if c in frame])
    for name in book.decisions:  # identification, exit, monitoring, risk_removal … whichever the file has
        if name in out:
            decision = book.decisions[name]
            codes = pd.Series(out[name], dtype=object)
            mapping = {v: decision.label(v, "zh") for v in [*decision.values, "review"]}
            out[name] = codes.map(mapping).fillna(codes)
    for column, name in (labels().get("decision_values") or {}).items():
        if column in out and name in book.decisions:
            codes = pd.Series(out[column], dtype=object)
            mapping = {v: book.decisions[name].label(v, "zh") for v in book.decisions[name].values}
            out[column] = codes.map(mapping).where(codes.isin(list(mapping)), codes)
    if "monitoring_triggers" in out:
        names = {t: r.description.zh for t, r in book.triggers().items()}
        out["monitoring_triggers"] = _map_joined(out["monitoring_triggers"], names, "；")
    if "missing_columns" in out:  # the blanks to fill, by the headers a clerk knows (parameters by description)
        names = {c.name: c.zh for c in HOUSEHOLD_COLUMNS}
        names.update({p: getattr(v.description, "zh", p) for p, v in book.parameters.items() if p not in names})
        out["missing_columns"] = _map_joined(out["missing_columns"], names, "；")
    for column, mapping in labels()["values"].items():
        if column in out:
            values = pd.Series(out[column], dtype=object)
            out[column] = values.map(mapping).where(values.isin(list(mapping)), values)
    return out.rename(columns=labels()["columns"])


def side_sheet(kind: str, lang: str) -> str:
    """The xlsx sheet name of a side file (`side_files` in columns.yaml; the kind itself in English)."""
    return labels()["side_files"][kind]["sheet"] if lang == "zh" else kind


def side_file(frame: pd.DataFrame, kind: str, lang: str) -> pd.DataFrame:
    """An errors, skipped-lines or checks table (`kind`, see `side_files` in columns.yaml) as a reader of `lang`
    sees it: ``en`` unchanged (the contract's names, stable for programs); ``zh`` with Chinese headers, the
    labelled columns first in the order given, and contract column names in the cells shown by their header."""
    if lang != "zh":
        return frame
    spec = labels()["side_files"][kind]
    out = frame.copy()
    names = spec.get("names")
    if names in out:
        headers = {c.name: c.zh for c in (*MEMBER_COLUMNS, *HOUSEHOLD_COLUMNS)}
        cells = pd.Series(out[names], dtype=object)
        out[names] = cells.map(headers).where(cells.isin(list(headers)), cells)
    labelled = spec["columns"]
    shown = [c for c in labelled if c in out and labelled[c]] + [c for c in out.columns if c not in labelled]
    return out[shown].rename(columns={c: v for c, v in labelled.items() if v})


def _map_joined(series: pd.Series, names: dict[str, str], separator: str) -> pd.Series:
    values = pd.Series(series, dtype=object)
    unique = {v: separator.join(names.get(p, p) for p in v.split(";")) for v in values.dropna().unique() if v}
    return values.map(unique).where(values.notna() & (values != ""), values)


def reason_sheet(records: pa.Table, book: RuleBook, lang: str) -> pd.DataFrame:
    """One row per household and cited rule (from the reason records), headers in `lang`."""
    frame = records.select(["household_id", "decision", "clause", "rule_id", "verdict", "message"]).to_pandas()
    frame = frame.rename(columns={"rule_id": "rule"})
    if lang == "zh":
        sheet = labels()["reason_sheet"]
        frame["decision"] = frame["decision"].map(
            {n: d.description.zh for n, d in book.decisions.items()}).fillna(frame["decision"])
        frame["rule"] = frame["rule"].map({r: v.description.zh for r, v in book.rules.items()}).fillna(frame["rule"])
        frame["verdict"] = frame["verdict"].map(labels()["verdicts"]).fillna(frame["verdict"])
        frame = frame.rename(columns=sheet["columns"])
    return frame


class Summary:
    """Households per township and status of each decision, accumulated chunk by chunk."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}

    def add(self, frame: pd.DataFrame) -> None:
        def text(values) -> pa.Array:
            return pa.array(values, from_pandas=True).cast(pa.string())

        township = text(frame["township"] if "township" in frame else [""] * len(frame)).fill_null("")
        table = pa.table({"t": township, **{name: text(frame[name]) for name in DECISIONS}})
        for name in DECISIONS:
            for row in table.group_by(["t", name]).aggregate([([], "count_all")]).to_pylist():
                key = (name, row["t"], row[name])
                self.counts[key] = self.counts.get(key, 0) + row["count_all"]

    def table(self, book: RuleBook, lang: str) -> pd.DataFrame:
        """Township rows; a column per (decision, status) label; a total row."""
        if not self.counts:
            return pd.DataFrame()
        rows = pd.DataFrame([(d, t, s, k) for (d, t, s), k in self.counts.items()],
                            columns=["decision", "township", "status", "count"])
        def header(d: str, s: str) -> str:
            decision = book.decisions[d]
            return f"{getattr(decision.description, lang)}·{decision.label(s, lang) if lang == 'zh' else s or '-'}"
        rows["column"] = [header(d, s) for d, s in zip(rows["decision"], rows["status"], strict=True)]
        order = list(dict.fromkeys(header(d, s) for d in DECISIONS for s in [*book.decisions[d].values, "review"]))
        table = rows.pivot_table(index="township", columns="column", values="count", aggfunc="sum", fill_value=0)
        table = table.reindex(columns=[c for c in order if c in table.columns])
        households = rows[rows["decision"] == DECISIONS[0]].groupby("township")["count"].sum()
        table.insert(0, "households", households.reindex(table.index).fillna(0).astype(int))
        names = labels()["summary_sheet"]
        table = table.rename(index={"": names["blank"][lang]})  # a blank township is counted, as 未填
        table.loc[names["total"][lang]] = table.sum()
        table = table.reset_index()
        if lang == "zh":
            table = table.rename(columns={"township": names["township"], "households": names["households"]})
        return table


class XlsxWriter:
    """A decisions workbook streamed a block of rows at a time (`povertyrules.decisions.workbook`; see the module
    docstring): however many households, memory holds the caller's chunk and one block of cells."""

    def __init__(self, path: Path | str, book: RuleBook, lang: str, sheet: str = "decisions"):
        from povertyrules.decisions.workbook import Workbook
        from povertyrules.io.tables import _temporary

        self.path, self.book, self.lang = Path(path), book, lang
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = _temporary(self.path)  # renamed to `path` when complete: no half workbook after a failure
        self.workbook = Workbook(self._temporary)
        self.sheets: dict[str, Any] = {}
        self.columns: dict[str, list[str]] = {}
        self.summary = Summary()
        self.main = labels()["decisions_sheet"] if lang == "zh" else sheet

    def write(self, frame: pd.DataFrame, records: pa.Table | None = None) -> None:
        from povertyrules.decisions.workbook import BLOCK
        from povertyrules.io.tables import _masked

        for start in range(0, len(frame), BLOCK):  # a whole run handed over at once is still localized in blocks
            part = frame.iloc[start:start + BLOCK]
            self.summary.add(part)
            self._append(self.main, _masked(localize(part, self.book, self.lang), True))
        if records is not None and records.num_rows:
            name = labels()["reason_sheet"]["name"] if self.lang == "zh" else "reasons"
            for start in range(0, records.num_rows, BLOCK):
                part = records.slice(start, BLOCK)
                self._append(name, _masked(reason_sheet(part, self.book, self.lang), True))

    def _append(self, name: str, frame: pd.DataFrame) -> None:
        if name not in self.sheets:
            self.columns[name] = list(frame.columns)
            self.sheets[name] = self.workbook.add_sheet(name, self.columns[name],
                                                        [_width(c, frame[c]) for c in frame.columns])
        self.sheets[name].append(frame.reindex(columns=self.columns[name]))

    def close(self) -> None:
        from povertyrules.io.tables import _publish

        if self.main not in self.sheets:
            self._append(self.main, localize(pd.DataFrame(columns=_empty_columns()), self.book, self.lang))
        table = self.summary.table(self.book, self.lang)
        if len(table):
            self._append(labels()["summary_sheet"]["name"] if self.lang == "zh" else "summary", table)
        self.workbook.close()
        _publish(self._temporary, self.path)

    def abort(self) -> None:
        """Drop what was written: the target is left as it was."""
        self.workbook.abort()
        self._temporary.unlink(missing_ok=True)


class DecisionWriter:
    """Decisions to .csv, .parquet (streamed, via `TableWriter`) or .xlsx (`XlsxWriter`), in `lang`.

    With `background`, chunks are localized, masked and written by one thread of their own, in the order given
    and at most `Background.DEPTH` chunks behind the caller, while the caller decides the next chunk (Arrow's
    kernels and writers release the GIL, so the second core writes); an error in that thread is raised by the
    next `write` or by `close`."""

    def __init__(self, path: Path | str, book: RuleBook, lang: str, background: bool = False):
        from povertyrules.io.tables import TableWriter

        self.book, self.lang = book, lang
        self.xlsx = Path(path).suffix.lower() == ".xlsx"
        self.writer: Any = XlsxWriter(path, book, lang) if self.xlsx else TableWriter(path)
        self._background = Background(self._write) if background else None

    def write(self, frame: pd.DataFrame, records: pa.Table | None = None) -> None:
        if self._background is not None:
            self._background.submit(frame, records)
        else:
            self._write(frame, records)

    def _write(self, frame: pd.DataFrame, records: pa.Table | None) -> None:
        if self.xlsx:
            self.writer.write(frame, records)
        else:
            self.writer.write(localize(frame, self.book, self.lang))

    def close(self) -> None:
        if self._background is not None:
            self._background.finish()
        self.writer.close()

    def abort(self) -> None:
        if self._background is not None:
            self._background.finish(raise_error=False)
        self.writer.abort()

    def __enter__(self) -> DecisionWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            try:
                self.close()
            except BaseException:
                self.writer.abort()
                raise
        else:  # a failed run leaves the previous file, or none, never a partial one
            self.abort()


class Background:
    """Calls `action` with each submitted chunk in one thread, in order, at most `DEPTH` chunks behind."""

    DEPTH = 2  # chunks waiting: bounds the memory held for the writer

    def __init__(self, action: Callable[..., None]):
        self._action, self._error = action, None
        self._queue: queue.Queue = queue.Queue(maxsize=self.DEPTH)
        self._thread = threading.Thread(target=self._run, name="decisions-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after an error the rest is drained unwritten, so no caller ever blocks
                try:
                    self._action(*item)
                except BaseException as exc:  # raised again in the caller's thread
                    self._error = exc

    def submit(self, *args: object) -> None:
        self._raise()
        self._queue.put(args)

    def finish(self, raise_error: bool = True) -> None:
        """Wait until every chunk submitted is written; raise the thread's error, if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if raise_error:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def _empty_columns() -> list[str]:
    return list(labels()["columns"])


def _width(header: object, values: pd.Series) -> float:
    """A column width from the header and the first values (CJK characters count double)."""
    sample = [str(header), *(str(v) for v in values.head(200) if not pd.isna(v))]
    def width(text: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return float(min(max(width(t) for t in sample) + 2, 60))


__all__ = ["Summary", "XlsxWriter", "localize", "reason_sheet"]
