"""A synthetic county: townships, villages, households with incomes around the lines, 六不评 flags at
plausible rates, a members sheet, and a few blanks and bad cells, as county spreadsheets have.

Everything is drawn from one seeded generator, so the same seed gives the same county. Rates are
illustrative, chosen to exercise every rule; they are not statistics of any real county.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from povertyrules.io.tables import write_table
from povertyrules.lang.rulebook import RuleBook, load_rulebook
from povertyrules.model.columns import HOUSEHOLD_COLUMNS, MEMBER_COLUMNS

TOWN_STEMS = list("青石白云龙凤金水柳桥河山松竹梅花东西南北新安平和")
VILLAGE_STEMS = list("上下前后大小高低长新老东西南北中")
CAUSES = ["因病", "因残", "因学", "因灾", "缺土地", "缺水", "缺技术", "缺劳力", "缺资金", "交通条件落后",
          "自身发展动力不足", "其他"]
EXPENDITURE_CAUSES = ["因病", "因残", "因灾", "因疫情", "其他"]
EXCLUSION_RATES = {  # share of households, before the income gradient
    "ex_public_employee": 0.03, "ex_village_cadre": 0.015, "ex_urban_property": 0.04, "ex_vehicle": 0.06,
    "ex_business": 0.02, "ex_costly_schooling": 0.01,
}
SECURITY = ["food_secure", "clothing_secure", "education_secured", "medical_secured", "housing_secured"]


@dataclass
class County:
    households: pd.DataFrame  # English contract column names, text cells
    members: pd.DataFrame


def synth(households: int, seed: int = 0, year: int = 2020, county: str = "示范县", members: bool = True,
          blank_rate: float = 0.01, bad_rate: float = 0.002, book: RuleBook | None = None) -> County:
    """Make a synthetic county of `households` rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    book = book or load_rulebook()
    line = float(book.parameters["poverty_line"].at(year) or book.parameters["poverty_line"].at(2020) or 4000)
    n = households
    towns = max(3, min(25, n // 1500 + 3))
    town_names = _names(rng, TOWN_STEMS, towns, ("镇", "乡"))
    town = rng.integers(0, towns, n)
    village_no = rng.integers(0, 12, n)
    village_names = np.array(_names(rng, VILLAGE_STEMS, 12, ("村",)), dtype=object)
    size = rng.choice(np.arange(1, 8), n, p=[0.10, 0.20, 0.22, 0.24, 0.14, 0.07, 0.03])
    status = rng.choice(np.array(["none", "poor", "exited"], dtype=object), n, p=[0.72, 0.08, 0.20])
    median = np.select([status == "poor", status == "exited"], [1.0, 2.8], 4.8) * line
    spread = np.select([status == "poor", status == "exited"], [0.35, 0.3], 0.5)
    per_capita = np.round(median * np.exp(rng.normal(0, 1, n) * spread), 2)
    net_income = np.round(per_capita * size)
    change = rng.normal(0.06, 0.15, n)
    dropped = rng.random(n) < 0.01
    last_year = np.round(np.where(dropped, net_income * rng.uniform(2.05, 3.0, n), net_income / (1 + change)))
    rigid = np.where(rng.random(n) < 0.15, np.round(np.exp(rng.normal(np.log(3000), 0.9, n))), 0.0)
    big = rng.random(n) < 0.006
    rigid = np.where(big, np.round(last_year * rng.uniform(1.05, 2.0, n)), rigid)
    cause = np.where(rigid > 0, rng.choice(EXPENDITURE_CAUSES, n, p=[0.5, 0.15, 0.15, 0.1, 0.1]), None)

    ratio = per_capita / line
    looks = _looks(rng, ratio, book, year)
    frame = pd.DataFrame({
        "household_id": [f"{seed % 1000:03d}{i:07d}" for i in range(n)],
        "county": county,
        "township": np.array(town_names, dtype=object)[town],
        "village": [f"{town_names[t][:-1]}{village_names[v]}" for t, v in zip(town, village_no, strict=True)],
        "year": year,
        "members": size,
        "net_income": net_income,
        "net_income_last_year": last_year,
        "rigid_expenditure": rigid,
        "expenditure_cause": cause,
    })
    insecure = np.clip(0.25 - 0.1 * ratio, 0.005, 0.2)
    for column in SECURITY:
        frame[column] = np.where(rng.random(n) < insecure / 3, "否", "是")
    for column, value in looks.items():
        frame[column] = value
    total = sum(looks.values())
    frame["four_look_score"] = np.where(rng.random(n) < 0.2, None, total)  # some counties give only the looks
    for column, rate in EXCLUSION_RATES.items():
        frame[column] = np.where(rng.random(n) < rate * (0.4 + ratio / 3), "是", "否")
    frame["ex_urban_property_rebuild"] = np.where(
        (frame["ex_urban_property"] == "是") & (rng.random(n) < 0.25), "是", "否")
    ill = (cause == "因病") | (cause == "因残") | (rng.random(n) < 0.05)  # some illness shows in no expense
    excluded = np.any([frame[c] == "是" for c in EXCLUSION_RATES], axis=0)
    frame["hardship_approved"] = np.where(ill & (excluded | (rng.random(n) < 0.3)) & (rng.random(n) < 0.6), "是", "否")
    frame["registered_status"] = status
    frame["exit_year"] = np.where(status == "exited", rng.integers(2016, year + 1, n), None)
    frame["able_bodied"] = np.minimum(size, rng.binomial(size, 0.55))
    frame["poverty_cause"] = np.where(status != "none", rng.choice(CAUSES, n), None)
    if book.parameters["regime_2021"].at(year) if "regime_2021" in book.parameters else False:
        _regime_2021_columns(rng, frame, year, ratio, rigid, dropped | big, status, insecure)
        # illustrative: a county of the regime years is made of 脱贫户 and 一般农户 (the drawn poor ones count
        # as exited, their exit year not recorded)
        frame["registered_status"] = np.where(status == "poor", "exited", status)
    frame = _as_text(frame)
    _blank_and_spoil(rng, frame, blank_rate, bad_rate)
    member_frame = _members(rng, frame, size) if members else pd.DataFrame(columns=[c.name for c in MEMBER_COLUMNS])
    return County(frame, member_frame)


def _regime_2021_columns(rng: np.random.Generator, frame: pd.DataFrame, year: int, ratio: np.ndarray,
                         rigid: np.ndarray, shocked: np.ndarray, status: np.ndarray, insecure: np.ndarray) -> None:
    """The columns the monitoring regime from 2021 reads (M21-3, M21-5), for years where the rules apply it:
    compliant out-of-pocket spending, drinking water, and for households already under monitoring the month
    it began, the measures in place, and the county's own category and removal flag."""
    n = len(frame)
    frame["compliant_spending"] = np.where(rigid > 0, np.round(rigid * rng.uniform(0.3, 0.9, n)), 0.0)
    frame["water_secured"] = np.where(rng.random(n) < insecure / 3, "否", "是")
    monitored = ((ratio < 2.3) | shocked) & (rng.random(n) < 0.6) | (rng.random(n) < 0.01)
    months_back = rng.integers(0, 36, n)  # began 0-35 months before December of the year
    start = (year * 12 + 11 - months_back) // 12 * 100 + (year * 12 + 11 - months_back) % 12 + 1
    frame["monitoring_start"] = np.where(monitored, start, None)
    frame["assistance_measures"] = np.where(monitored, rng.choice(np.arange(4), n, p=[0.1, 0.4, 0.3, 0.2]), None)
    frame["risk_removed"] = np.where(monitored, np.where(rng.random(n) < 0.3, "是", "否"), None)
    category = np.select([status == "exited", status == "none"], ["脱贫不稳定户", "边缘易致贫户"], "突发严重困难户")
    category = np.where(rng.random(n) < 0.15, "突发严重困难户", category)
    frame["county_category"] = np.where(monitored, category, None)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, as a spreadsheet holds it (whole numbers without a decimal point)."""
    numeric = {c.name for c in HOUSEHOLD_COLUMNS if c.kind in ("number", "int")}
    return pd.DataFrame({
        c: (pd.to_numeric(frame[c]).round().astype("Int64") if c in numeric else frame[c]).astype("string")
        for c in frame.columns
    })


def _names(rng: np.random.Generator, stems: list[str], count: int, suffixes: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(stems, 2)) + str(rng.choice(suffixes))
        if name not in names:
            names.append(name)
    return names


def _looks(rng: np.random.Generator, ratio: np.ndarray, book: RuleBook, year: int) -> dict[str, np.ndarray]:
    """四看法 points per look, rising with income relative to the line (capped at each look's maximum)."""
    share = np.clip(0.55 + 0.25 * np.log(np.maximum(ratio, 0.05)) + rng.normal(0, 0.1, len(ratio)), 0.05, 1)
    looks = {}
    for look in ("house", "grain", "labor", "study"):
        maximum = float(book.parameters[f"look_{look}_max"].at(year) or 25)
        looks[f"look_{look}"] = np.clip(np.round(maximum * (share + rng.normal(0, 0.08, len(ratio)))), 0, maximum)
    return looks


def _blank_and_spoil(rng: np.random.Generator, frame: pd.DataFrame, blank_rate: float, bad_rate: float) -> None:
    """Blank a few optional cells and spoil a few cells, as real county sheets have."""
    n = len(frame)
    optional = [c.name for c in HOUSEHOLD_COLUMNS if not c.required and c.name not in ("county", "year")
                and c.kind != "id_number" and c.name in frame]  # the synthetic county holds no identity numbers
    for column in optional:
        frame.loc[rng.random(n) < blank_rate / 4, column] = None
    spoil = np.flatnonzero(rng.random(n) < bad_rate)
    kinds = rng.integers(0, 4, len(spoil))
    for row, kind in zip(spoil, kinds, strict=True):
        if kind == 0:
            frame.at[row, "net_income"] = f"约{frame.at[row, 'net_income']}"
        elif kind == 1:
            frame.at[row, "members"] = "2.5"
        elif kind == 2:
            frame.at[row, "ex_vehicle"] = "不清楚"
        elif row > 0:
            frame.at[row, "household_id"] = frame.at[row - 1, "household_id"]


def _members(rng: np.random.Generator, frame: pd.DataFrame, size: np.ndarray) -> pd.DataFrame:
    """Members consistent with each household's size under ID-1, with the special situations mixed in."""
    n = len(frame)
    extra = rng.random(n) < 0.12  # a married-out daughter still on the register, not resident
    counts = size + extra
    hid = np.repeat(frame["household_id"].to_numpy(), counts)
    index = np.concatenate([np.arange(c) for c in counts]) if n else np.array([], int)
    is_extra = np.repeat(extra, counts) & (index == np.repeat(counts, counts) - 1)
    m = len(hid)
    situation = np.where(is_extra, "嫁出", None).astype(object)
    special = ~is_extra & (index > 0) & (rng.random(m) < 0.06)
    situation[special] = rng.choice(["因学迁出户口的在校生", "义务兵", "共同生活无户籍", "入赘"], special.sum())
    on_hukou = np.where(np.isin(situation, ["因学迁出户口的在校生", "义务兵", "共同生活无户籍", "入赘"]), "否", "是")
    resident = np.where(is_extra | (situation == "因学迁出户口的在校生") | (situation == "义务兵"), "否", "是")
    relation = np.select([index == 0, index == 1], ["户主", "配偶"], "子女")
    members = pd.DataFrame({
        "household_id": hid, "member_id": [f"{h}-{i + 1:02d}" for h, i in zip(hid, index, strict=True)],
        "relation": relation, "on_hukou": on_hukou, "resident": resident, "situation": situation,
    }).astype("string")
    members.loc[rng.random(m) < 0.002, "resident"] = None
    return members


def chinese_headers(frame: pd.DataFrame, columns: tuple = HOUSEHOLD_COLUMNS) -> pd.DataFrame:
    zh = {c.name: c.zh for c in columns}
    return frame.rename(columns=zh)


def write_county(county: County, path: Path | str, headers: str = "zh") -> list[Path]:
    """Write households (and members: a second sheet in xlsx, a ``.members`` file beside otherwise)."""
    path = Path(path)
    households, members = county.households, county.members
    if headers == "zh":
        households, members = chinese_headers(households), chinese_headers(members, MEMBER_COLUMNS)
    if path.suffix.lower() == ".xlsx":
        sheets = {"members": members} if len(members) else None
        return [write_table(households, path, sheet="households", sheets=sheets, mask=False)]  # synthetic
    written = [write_table(households, path, mask=False)]
    if len(members):
        written.append(write_table(members, path.with_name(f"{path.stem}.members{path.suffix}"), mask=False))
    return written


EVENT_SOURCES = {
    "medical_expense": ["health", "self_report"], "disaster_loss": ["emergency_management", "cadre_visit"],
    "epidemic_impact": ["health", "civil_affairs"], "disability_certified": ["disabled_persons_federation"],
    "job_loss": ["human_resources", "self_report"], "income_report": ["self_report", "cadre_visit"],
}


def synth_events(households: pd.DataFrame, events: int, seed: int = 0, year: int = 2021,
                 bad_rate: float = 0.01) -> list[dict]:
    """Department alerts and household reports for households of a county (a few of them bad on purpose)."""
    rng = np.random.default_rng(seed)
    ids = households["household_id"].dropna().astype(str).to_numpy()
    incomes = pd.to_numeric(households["net_income"], errors="coerce").fillna(10000).to_numpy()
    kinds = list(EVENT_SOURCES)
    chosen = rng.choice(len(kinds), events, p=[0.35, 0.1, 0.05, 0.05, 0.1, 0.35])
    who = rng.integers(0, len(ids), events)
    days = np.sort(rng.integers(0, 365, events))
    out = []
    for i in range(events):
        kind = kinds[chosen[i]]
        income = float(incomes[who[i]])
        amount = {
            "medical_expense": rng.lognormal(np.log(4000), 1.0), "disaster_loss": rng.lognormal(np.log(8000), 1.0),
            "epidemic_impact": rng.lognormal(np.log(2000), 0.8), "disability_certified": None,
            "job_loss": income * rng.uniform(0.2, 0.7), "income_report": income * rng.uniform(0.3, 1.3),
        }[kind]
        event = {"household_id": ids[who[i]], "date": str(dt.date(year, 1, 1) + dt.timedelta(days=int(days[i]))),
                 "source": str(rng.choice(EVENT_SOURCES[kind])), "kind": kind,
                 "amount": None if amount is None else round(float(amount)), "note": ""}
        if rng.random() < bad_rate:
            spoil = rng.integers(0, 3)
            if spoil == 0:
                event["household_id"] = "NO-SUCH-HOUSEHOLD"
            elif spoil == 1:
                event["date"] = f"{year}-13-40"
            else:
                event["amount"] = -abs(event["amount"] or 100)
        out.append(event)
    return out
