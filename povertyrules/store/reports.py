"""Reports over stored runs: the watchlist with its MON-2 scale check, and the difference between two runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from povertyrules.engines.vectorized import evaluate
from povertyrules.store.explain import snapshot_rulebook
from povertyrules.store.runs import decisions_frame, get_run, input_frame, reasons_for

MONITORED = ("unstable_exited", "edge", "sudden_hardship")
REGISTERED = ("poor", "exited")


def watchlist(engine: Engine, run_id: int | None = None, county: str | None = None,
              township: str | None = None, deep_poverty: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(monitored households sorted by risk, scale check per county) for a stored run."""
    decisions = decisions_frame(engine, run_id)
    run = get_run(engine, int(decisions["run_id"].iloc[0])) if len(decisions) else get_run(engine, run_id or 0)
    book = snapshot_rulebook(run)
    if county:
        decisions = decisions[decisions["county"] == county]
    if township:
        decisions = decisions[decisions["township"] == township]
    inputs = input_frame(run, decisions)
    members = pd.to_numeric(inputs.get("members"), errors="coerce").fillna(0)
    watched = decisions[decisions["monitoring"].isin(MONITORED)].copy()
    if len(watched):
        typed = inputs.loc[watched.index].reset_index(drop=True)
        for name, column in book.columns("household").items():
            if name in typed and column.type == "bool":
                typed[name] = typed[name].astype("boolean")
        typed["year"] = watched["year"].to_numpy()
        result = evaluate(book, typed)
        watched["assistance"] = [book.decisions["assistance"].label(v) for v in result.outcome("assistance")]
        watched["assistance_cause"] = [book.decisions["assistance_cause"].label(v)
                                       for v in result.outcome("assistance_cause")]
        for column in ("able_bodied", "expenditure_cause", "members"):  # by position: `typed` has a fresh index
            watched[column] = typed[column].to_numpy() if column in typed else None
    watched["income_to_monitoring_line"] = (watched["per_capita_income"] / watched["monitoring_line"]).round(3)
    watched["trigger_count"] = watched["monitoring_triggers"].fillna("").str.count("[a-z_]+")
    watched = watched.sort_values(["trigger_count", "income_to_monitoring_line"], ascending=[False, True])
    columns = ["household_id", "county", "township", "village", "monitoring", "monitoring_triggers",
               "per_capita_income", "monitoring_line", "income_to_monitoring_line", "members", "able_bodied",
               "expenditure_cause", "assistance", "assistance_cause", "reasons"]
    return watched.reindex(columns=columns).reset_index(drop=True), _scale(book, decisions, members, deep_poverty)


def _scale(book, decisions: pd.DataFrame, members: pd.Series, deep_poverty: tuple[str, ...]) -> pd.DataFrame:
    """MON-2: monitored people as a share of the registered population, per county."""
    year = int(decisions["year"].max()) if len(decisions) else 2020
    usual = book.parameters["monitoring_scale"].at(year)  # None where no scale is in force (from 2021)
    cap = book.parameters["monitoring_scale_deep_poverty"].at(year)
    frame = pd.DataFrame({
        "county": decisions["county"].fillna("(blank)"),
        "monitored_people": np.where(decisions["monitoring"].isin(MONITORED), members, 0),
        "registered_people": np.where(decisions["registered_status"].isin(REGISTERED), members, 0),
    })
    table = frame.groupby("county", as_index=False).sum()
    table["share"] = (table["monitored_people"] / table["registered_people"].replace(0, np.nan)).round(4)
    table["deep_poverty"] = table["county"].isin(deep_poverty)
    table["limit"] = np.where(table["deep_poverty"], np.nan if cap is None else cap,
                              np.nan if usual is None else usual)
    table["check"] = np.select(
        [table["share"].isna(), table["limit"].isna(), table["share"] > table["limit"]],
        ["no registered population", "no scale in force for the year / 该年度无监测规模规定",
         "WARNING: above the MON-2 scale / 超过MON-2监测规模"], "ok")
    return table


def diff_runs(engine: Engine, run_a: int, run_b: int) -> pd.DataFrame:
    """Households whose identification, exit or monitoring differ between two runs, and the rules that did it."""
    for run in (run_a, run_b):  # an unknown run is an error, not a run with no decisions
        get_run(engine, run)
    a, b = decisions_frame(engine, run_a), decisions_frame(engine, run_b)
    columns = ["identification", "exit", "monitoring"]
    joined = a[["household_id", *columns]].merge(b[["household_id", *columns]], on="household_id",
                                                  how="outer", suffixes=("_a", "_b"))
    changed_mask = np.zeros(len(joined), dtype=bool)
    for c in columns:
        changed_mask |= joined[f"{c}_a"].fillna("∅").to_numpy() != joined[f"{c}_b"].fillna("∅").to_numpy()
    changed = joined[changed_mask].reset_index(drop=True)
    ids = changed["household_id"].tolist()
    reasons = {run: _reasons(engine, run, ids) for run in (run_a, run_b)}
    rows = []
    for _, row in changed.iterrows():
        for c in columns:
            before, after = row[f"{c}_a"], row[f"{c}_b"]
            if (before if isinstance(before, str) else "∅") == (after if isinstance(after, str) else "∅"):
                continue
            ra = reasons[run_a].get((row["household_id"], c), {})
            rb = reasons[run_b].get((row["household_id"], c), {})
            flipped = sorted(rule for rule in set(ra) & set(rb) - {"_decisive"} if ra[rule] != rb[rule])
            rows.append({
                "household_id": row["household_id"], "decision": c, "run_a": before, "run_b": after,
                "decisive_rule_a": ra.get("_decisive"), "decisive_rule_b": rb.get("_decisive"),
                "changed_conditions": ";".join(f"{r}: {ra[r]}→{rb[r]}" for r in flipped),
            })
    return pd.DataFrame(rows, columns=["household_id", "decision", "run_a", "run_b", "decisive_rule_a",
                                       "decisive_rule_b", "changed_conditions"])


def _reasons(engine: Engine, run_id: int, ids: list[str]) -> dict[tuple[str, str], dict[str, str]]:
    """(household, decision) -> {rule_id: verdict, '_decisive': the deepest applying outcome rule}."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    if not ids:  # nothing changed: no reasons to re-derive
        return found
    for household, records in reasons_for(engine, run_id, ids).items():
        for r in records:
            entry = found.setdefault((household, r["decision"]), {})
            entry[r["rule_id"]] = r["verdict"]
            if r["kind"] == "outcome" and r["verdict"] == "true":
                entry["_decisive"] = r["rule_id"]
    return found


def watchlist_sheets(engine: Engine, households: pd.DataFrame, scale: pd.DataFrame, run_id: int | None,
                     lang: str) -> dict[str, pd.DataFrame]:
    """The watchlist workbook's sheets as a reader of `lang` sees them: with ``zh``, Chinese sheet names and
    headers, statuses and monitoring triggers by their labels from the rule files, the scale check in words
    (`decisions/columns.yaml`); with ``en``, the contract's names and codes, stable for programs."""
    if lang != "zh":
        return {"watchlist": households, "scale": scale}
    from povertyrules.decisions.files import labels, localize

    words = labels()["watchlist"]
    run = get_run(engine, run_id) if run_id else None
    if run is None:
        decisions = decisions_frame(engine, None)
        run = get_run(engine, int(decisions["run_id"].iloc[0])) if len(decisions) else None
    book = snapshot_rulebook(run) if run is not None else None
    shown = households.rename(columns=words["columns"])
    shown = localize(shown, book, "zh") if book is not None else shown.rename(columns=labels()["columns"])
    table = scale.copy()
    table["check"] = table["check"].map(lambda v: words["checks"].get(v, v))
    table["deep_poverty"] = table["deep_poverty"].map({True: words["yes"], False: words["no"]})
    table["limit"] = table["limit"].astype(object).where(table["limit"].notna(), "")
    sheets = words["sheets"]
    return {sheets["households"]: shown, sheets["scale"]: table.rename(columns=words["scale_columns"])}
