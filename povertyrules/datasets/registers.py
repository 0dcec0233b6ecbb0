"""Synthetic department registers for a synthetic county (`synth`), consistent with its people.

The people are those of `layouts.national_export` for the same county and seed (the same 证件号码), and the
records follow the county's own facts: a car for the households whose 有小轿车… flag is 是, a company, a state
salary or a town flat likewise (a quarter of the flats 因灾重建/拆迁安置 where the county says so), 医保 settlements
adding up to the households' medical rigid expenditure, 灾情 losses for the disaster-hit ones, certificates for
the members recorded 残疾, 低保 for some registered poor. Each register also holds what a real one does and the
rules must not count: motorcycles, a supervisor who is no shareholder, a private employer, a vehicle deregistered
before the year, and records of people of no household of the county (another county's residents).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from povertyrules.datasets.layouts import _people, valid_id
from povertyrules.datasets.synth import County

KINDS = ("vehicles", "market_entities", "state_payroll", "urban_property", "medical_settlements",
         "disaster_losses", "disability_certificates", "social_assistance")


def _pick(people: pd.DataFrame, households: pd.Series) -> pd.DataFrame:
    """One member of each given household (the householder, or else a random member)."""
    chosen = people[people["household_id"].isin(set(households))]
    return chosen.groupby("household_id", sort=False).head(1)


def _dates(rng: np.random.Generator, n: int, first: int, last: int) -> np.ndarray:
    start = np.datetime64(f"{first}-01-01")
    days = (np.datetime64(f"{last}-12-31") - start).astype(int)
    return (start + rng.integers(0, days + 1, n)).astype(str)


def _strangers(rng: np.random.Generator, n: int) -> list[str]:
    """Valid ID numbers of people of another county (area code 520102)."""
    return [valid_id(f"520102{1950 + int(rng.integers(0, 60))}0{int(rng.integers(1, 10))}1{int(rng.integers(0, 9))}"
                     f"{int(rng.integers(0, 1000)):03d}") for _ in range(n)]


def registers(county: County, seed: int = 0, year: int = 2020) -> dict[str, pd.DataFrame]:
    """Every register kind, as the department's file (Chinese headers), for the county's year `year`."""
    rng = np.random.default_rng(seed + 71)
    h = county.households
    people = _people(county, seed)
    yes = {c: h.loc[h[c] == "是", "household_id"] for c in
           ("ex_vehicle", "ex_business", "ex_public_employee", "ex_urban_property") if c in h}
    others = h["household_id"].sample(frac=0.05, random_state=seed)
    out: dict[str, pd.DataFrame] = {}

    owners = _pick(people, yes["ex_vehicle"])
    bikes = _pick(people, others)
    gone = _pick(people, h["household_id"].sample(frac=0.01, random_state=seed + 1))
    strangers = _strangers(rng, 5)
    n = len(owners)
    out["vehicles"] = pd.DataFrame({
        "号牌号码": [f"贵E{rng.integers(10000, 99999)}" for _ in range(n + len(bikes) + len(gone) + 5)],
        "车辆类型": [*rng.choice(["小型轿车", "面包车", "工程机械", "大型拖拉机"], n, p=[0.6, 0.25, 0.05, 0.1]),
                 *rng.choice(["二轮摩托车", "三轮汽车"], len(bikes)), *["小型轿车"] * len(gone), *["小型轿车"] * 5],
        "所有人": [*owners["name"], *bikes["name"], *gone["name"], *["外县车主"] * 5],
        "身份证明号码": [*owners["id_number"], *bikes["id_number"], *gone["id_number"], *strangers],
        "初次登记日期": [*_dates(rng, n + len(bikes), 2010, year), *_dates(rng, len(gone), 2008, 2012),
                   *_dates(rng, 5, 2015, year)],
        "注销日期": [*[None] * (n + len(bikes)), *_dates(rng, len(gone), 2013, year - 1), *[None] * 5],
    })

    bosses = _pick(people, yes["ex_business"])
    supervisors = _pick(people, others.head(max(1, len(others) // 4)))
    n = len(bosses)
    out["market_entities"] = pd.DataFrame({
        "统一社会信用代码": [f"91522301MA{rng.integers(10**7, 10**8)}" for _ in range(n + len(supervisors) + 3)],
        "企业名称": [f"{v}种养殖有限公司" for v in rng.choice(list("兴盛丰华鑫和"), n + len(supervisors) + 3)],
        "人员类型": [*rng.choice(["法定代表人", "股东"], n), *["监事"] * len(supervisors), *["法定代表人"] * 3],
        "证件号码": [*bosses["id_number"], *supervisors["id_number"], *_strangers(rng, 3)],
        "成立日期": _dates(rng, n + len(supervisors) + 3, 2012, year),
        "注销日期": None,
        "年报情况": "已年报",
    })

    staff = _pick(people, yes["ex_public_employee"])
    private = _pick(people, others.tail(max(1, len(others) // 4)))
    n = len(staff)
    out["state_payroll"] = pd.DataFrame({
        "单位名称": [*rng.choice(["县教育局", "县人民医院", "县供电公司", "乡镇人民政府"], n),
                 *["某私营企业"] * len(private)],
        "单位性质": [*rng.choice(["机关", "事业单位", "国有企业"], n), *["私营企业"] * len(private)],
        "姓名": [*staff["name"], *private["name"]],
        "身份证号码": [*staff["id_number"], *private["id_number"]],
        "入职日期": _dates(rng, n + len(private), 2000, year - 1),
        "离职日期": None,
        "月工资": np.round(rng.uniform(2500, 6000, n + len(private))),
    })

    buyers = _pick(people, yes["ex_urban_property"])
    rebuilt = set(h.loc[h.get("ex_urban_property_rebuild", pd.Series(dtype=object)) == "是", "household_id"])
    n = len(buyers)
    way = np.where(buyers["household_id"].isin(rebuilt), rng.choice(["因灾重建", "拆迁安置"], n), "购买")
    out["urban_property"] = pd.DataFrame({
        "不动产权证号": [f"黔（{year}）兴义市不动产权第{rng.integers(10**6, 10**7)}号" for _ in range(n)],
        "坐落": rng.choice(["兴义市桔山街道", "兴义市丰都街道", "顶效镇"], n),
        "权利人证件号码": buyers["id_number"].to_numpy(),
        "登记日期": _dates(rng, n, 2012, year),
        "房屋用途": rng.choice(["住宅", "商业"], n, p=[0.85, 0.15]),
        "取得方式": way,
    })

    rigid = pd.to_numeric(h["rigid_expenditure"], errors="coerce").fillna(0)
    ill = h[(h["expenditure_cause"] == "因病") & (rigid > 0)]
    patients = _pick(people, ill["household_id"])
    amount = rigid.set_axis(h["household_id"]).reindex(patients["household_id"]).to_numpy()
    parts = rng.integers(1, 4, len(patients))
    who = np.repeat(patients["id_number"].to_numpy(), parts)
    share = np.repeat(amount / parts, parts)
    strangers = _strangers(rng, 5)
    out["medical_settlements"] = pd.DataFrame({
        "结算日期": _dates(rng, len(who) + 5, year, year),
        "参保人证件号码": [*who, *strangers],
        "就诊类型": rng.choice(["住院", "门诊慢特病"], len(who) + 5, p=[0.7, 0.3]),
        "医疗总费用": np.round(np.r_[share, np.full(5, 800.0)] * rng.uniform(2.0, 4.0, len(who) + 5), 2),
        "合规自付费用": np.round(np.r_[share, np.full(5, 800.0)], 2),
    })

    hit = h[(h["expenditure_cause"] == "因灾") & (rigid > 0)]
    victims = _pick(people, hit["household_id"])
    out["disaster_losses"] = pd.DataFrame({
        "灾害类型": rng.choice(["洪涝", "风雹", "地质灾害"], len(victims)),
        "灾害发生日期": _dates(rng, len(victims), year, year),
        "受灾人证件号码": victims["id_number"].to_numpy(),
        "直接经济损失": rigid.set_axis(h["household_id"]).reindex(victims["household_id"]).to_numpy(),
    })

    disabled = people[people["health"] == "残疾"]
    out["disability_certificates"] = pd.DataFrame({
        "残疾人证号": [f"{i}{rng.integers(10, 99)}" for i in disabled["id_number"]],
        "证件号码": disabled["id_number"].to_numpy(),
        "残疾类别": rng.choice(["肢体", "视力", "听力", "智力"], len(disabled)),
        "残疾等级": rng.choice(["一级", "二级", "三级", "四级"], len(disabled)),
        "发证日期": _dates(rng, len(disabled), 2012, year),
        "有效期至": None,
    })

    poor = h.loc[h["registered_status"] == "poor", "household_id"].sample(frac=0.3, random_state=seed + 2)
    guaranteed = _pick(people, poor)
    out["social_assistance"] = pd.DataFrame({
        "保障类别": rng.choice(["农村低保", "特困供养"], len(guaranteed), p=[0.85, 0.15]),
        "证件号码": guaranteed["id_number"].to_numpy(),
        "批准日期": _dates(rng, len(guaranteed), 2015, year),
        "停保日期": None,
        "月保障金额": np.round(rng.uniform(200, 500, len(guaranteed))),
    })
    return out


def write_registers(county: County, folder: Path | str, seed: int = 0, year: int = 2020,
                    kinds: tuple[str, ...] = KINDS) -> list[Path]:
    """Each register as a UTF-8 CSV in `folder` (e.g. ``vehicles.csv``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made = registers(county, seed, year)
    paths = []
    for kind in kinds:
        path = folder / f"{kind}.csv"
        made[kind].to_csv(path, index=False)
        paths.append(path)
    return paths
