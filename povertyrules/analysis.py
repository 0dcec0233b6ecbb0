"""The analysts' API: load scored runs, score what-ifs without writing files, compare scorings, and read every
criterion per household. Charts use matplotlib with a CJK font (`use_cjk_font`).

>>> import povertyrules.analysis as pa                                                  # doctest: +SKIP
>>> base = pa.score(frame, year=2020).decisions                                          # doctest: +SKIP
>>> wider = pa.score(frame, year=2020, overrides={"monitoring_multiplier": 1.8}).decisions  # doctest: +SKIP
>>> pa.compare(base, wider, by="township")                                               # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from povertyrules.engines.vectorized import evaluate
from povertyrules.errors import require
from povertyrules.io.tables import read_table
from povertyrules.lang.check import require_parameters
from povertyrules.lang.rulebook import RuleBook
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.model.records import parse_records
from povertyrules.scoring import resolve_rules, score

DECISIONS = ("identification", "exit", "monitoring")
CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
             "SimHei", "Microsoft YaHei", "PingFang SC")

__all__ = ["compare", "criteria", "load_decisions", "score", "use_cjk_font"]


def load_decisions(source: str | Path, run: int | None = None) -> pd.DataFrame:
    """A scored run as a DataFrame: a decisions file (.csv/.xlsx/.parquet), or an audit store (a SQLite path or
    ``postgresql://`` URL; the latest run unless `run` is given)."""
    text = str(source)
    if "://" in text or text.endswith(".db"):
        from povertyrules.store.database import connect
        from povertyrules.store.runs import decisions_frame

        return decisions_frame(connect(text, must_exist=True), run)
    frame = _as_codes(read_table(source))
    for column in ("poverty_line", "monitoring_line", "per_capita_income", "four_look_score"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _as_codes(frame: pd.DataFrame) -> pd.DataFrame:
    """A decisions file written for a Chinese reader (`--lang zh`) read back with the contract's names and
    status codes, as a ``--lang en`` file and the store give them; other files are returned as they are."""
    from povertyrules.decisions.files import labels
    from povertyrules.lang.rulebook import load_rulebook

    names = labels()
    headers = {zh: en for en, zh in names["columns"].items() if zh}
    if not any(c in headers for c in frame.columns):
        return frame
    frame = frame.rename(columns=headers)
    book = load_rulebook()
    for name, decision in book.decisions.items():
        if name in frame:
            codes = {decision.label(v, "zh"): v for v in [*decision.values, "review"]}
            frame[name] = frame[name].map(lambda v, codes=codes: codes.get(v, v) if isinstance(v, str) else v)
    for column, mapping in names["values"].items():
        if column in frame:
            codes = {label: code for code, label in mapping.items()}
            frame[column] = frame[column].map(lambda v, codes=codes: codes.get(v, v) if isinstance(v, str) else v)
    return frame


def compare(before: pd.DataFrame, after: pd.DataFrame, by: str | None = "township") -> pd.DataFrame:
    """Households moving between statuses from one scoring to another, per decision (and per `by` group)."""
    keys = ["household_id", *([by] if by else [])]
    joined = before[[*keys, *DECISIONS]].merge(after[["household_id", *DECISIONS]], on="household_id",
                                               suffixes=("_before", "_after"))
    parts = []
    for decision in DECISIONS:
        groups = [*([by] if by else []), f"{decision}_before", f"{decision}_after"]
        counts = joined.fillna({f"{decision}_before": "", f"{decision}_after": ""}).groupby(groups, dropna=False) \
            .size().rename("households").reset_index()
        counts = counts.rename(columns={f"{decision}_before": "before", f"{decision}_after": "after"})
        counts.insert(0, "decision", decision)
        parts.append(counts)
    table = pd.concat(parts, ignore_index=True)
    table["moved"] = table["before"] != table["after"]
    return table


def criteria(frame: pd.DataFrame, year: int | None = None, rules: RuleBook | str | Path | None = None,
             overrides: dict[str, Any] | None = None) -> pd.DataFrame:
    """Every criterion (True / False / <NA> when unknown) and decision per household, for cohort analysis."""
    book = resolve_rules(rules, overrides)
    typed = parse_records(frame, HOUSEHOLD_COLUMNS, "<frame>", unique="household_id").valid
    if year is not None:
        typed["year"] = typed["year"].fillna(year) if "year" in typed else year
    typed = typed[typed["year"].notna()].reset_index(drop=True)
    typed["year"] = typed["year"].astype("int64")
    require_parameters(book, pd.unique(typed["year"]))
    result = evaluate(book, typed)
    out = pd.DataFrame({"household_id": typed["household_id"]})
    for column in ("county", "township", "village", "registered_status", "members"):
        if column in typed:
            out[column] = typed[column].to_numpy()
    for rule in book.rules.values():
        if rule.entity == "household" and rule.kind == "criterion":
            v = result.value(rule.id)
            out[rule.id] = pd.array([bool(x) if k else None for x, k in zip(v.values, v.known, strict=True)],
                                    dtype="boolean")
    for name, decision in book.decisions.items():
        if decision.entity == "household":
            out[name] = result.outcome(name)
    return out


def use_cjk_font() -> str:
    """Make matplotlib draw Chinese text with an installed CJK font (so no boxes appear); return its name."""
    require("charts (povertyrules.analysis.use_cjk_font)", "analysis", "matplotlib")
    import matplotlib

    found = find_cjk_font()
    if found is None:
        raise RuntimeError("no CJK font found: install one (Debian: apt-get install fonts-wqy-microhei)")
    matplotlib.rcParams["font.sans-serif"] = [found, *matplotlib.rcParams["font.sans-serif"]]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return found


def find_cjk_font() -> str | None:
    """The name of an installed CJK font matplotlib can use, or None. matplotlib caches the fonts it saw when
    its cache was built, so a font installed since then is found by rebuilding the cache (once per process)."""
    from matplotlib import font_manager

    def known() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in installed), None)

    found = known()
    if found is None:
        # as matplotlib itself does on a missing font file: rebuild, then update the shared instance in place
        vars(font_manager.fontManager).update(vars(font_manager._load_fontmanager(try_read_cache=False)))
        font_manager.fontManager._findfont_cached.cache_clear()
        found = known()
    return found
