"""Synthetic county files in the layouts counties really hold, built from a synthetic county (`synth`).

- `national_export`: the national system's county export, one row per person (household fields repeated);
- `township_roster`: a 花名册 with two title lines, a merged two-level header, √/×, `7308元`, a 合计 line and a
  signature line;
- `monitoring_export`: the monitoring export, a title and an export line above a per-person table;
- `four_look_sheet`: a village 四看法 sheet, keyed by the householder's ID number, with a merged header per look.

The column names are those of the real files (rules/layouts/*.yaml cite where they come from); the people are
made up. ID numbers are valid GB 11643 numbers of no one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xlsxwriter

from povertyrules.datasets.synth import County
from povertyrules.privacy import _CHECK, _WEIGHTS

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
GIVEN = list("明华芳丽军强伟英秀兰平刚桂珍玉红梅建国")
HOUSEHOLD_TYPE = {"none": "一般农户", "poor": "贫困户", "exited": "脱贫户"}
MARK = {"是": "√", "否": "×"}


def valid_id(number17: str) -> str:
    """An 18-digit GB 11643 number from its first 17 digits (the check digit appended)."""
    return number17 + _CHECK[sum(int(d) * w for d, w in zip(number17, _WEIGHTS, strict=True)) % 11]


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells as Python objects, blanks as None (so comparisons with a blank are simply false)."""
    frame = frame.reset_index(drop=True).astype(object)
    return frame.where(frame.notna(), None)


def _recorded(h: pd.DataFrame, column: str) -> pd.Series:
    """The county's own monitoring record (监测对象类别, 风险是否已消除, 识别监测时间) as the export writes it:
    the synthetic county's value where it has one (years of the regime from 2021), else blank."""
    if column not in h:
        return pd.Series("", index=h.index, dtype=object)
    return h[column].where(h[column].notna(), "").astype(str)


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _people(county: County, seed: int) -> pd.DataFrame:
    """One row per counted person of each household, with name, ID number, relation, health, labour skill."""
    rng = np.random.default_rng(seed + 17)
    h = county.households
    size = pd.to_numeric(h["members"], errors="coerce").fillna(1).clip(1, 12).astype(int).to_numpy()
    hid = np.repeat(h["household_id"].to_numpy(), size)
    index = np.concatenate([np.arange(s) for s in size]) if len(size) else np.array([], int)
    m = len(hid)
    age = np.where(index == 0, rng.integers(30, 75, m), np.where(index == 1, rng.integers(28, 72, m),
                                                                    rng.integers(1, 40, m)))
    born = [f"{2020 - a:04d}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}" for a in age]
    area = "522301"
    ids = [valid_id(f"{area}{b}{rng.integers(0, 1000):03d}") for b in born]
    able_rows = np.repeat(pd.to_numeric(h["able_bodied"], errors="coerce").fillna(0).astype(int).to_numpy(), size)
    labour = np.where(index < able_rows, rng.choice(["普通劳动力", "技能劳动力"], m, p=[0.8, 0.2]),
                      np.where(age < 16, "无劳动力", rng.choice(["弱劳动力或半劳动力", "丧失劳动力", "无劳动力"], m)))
    ill = np.repeat((county.households["expenditure_cause"] == "因病").fillna(False).to_numpy(), size)
    health = np.where((index == 0) & ill, "患有大病",
                      np.where(index < able_rows, "健康", rng.choice(["健康", "长期慢性病", "残疾"], m, p=[0.7, 0.2, 0.1])))
    health = np.where((health == "残疾") & (index < able_rows), "健康", health)
    relation = np.select([index == 0, index == 1], ["户主", "配偶"], "子女")
    names = ["".join(rng.choice(SURNAMES, 1)) + "".join(rng.choice(GIVEN, rng.integers(1, 3))) for _ in range(m)]
    return pd.DataFrame({"household_id": hid, "index": index, "person_id": [f"{x}{i + 1:02d}" for x, i in
                                                                          zip(hid, index, strict=True)],
                         "name": names, "id_number": ids, "relation": relation, "health": health,
                         "labour": labour, "born": born})


def _incomes(county: County, seed: int) -> pd.DataFrame:
    """Income components that add up to each household's net income (cost subtracted)."""
    rng = np.random.default_rng(seed + 29)
    net = _num(county.households, "net_income")
    n = len(net)
    shares = rng.dirichlet([4, 2, 0.3, 1.5], n)
    cost = np.round(np.abs(np.nan_to_num(net)) * rng.uniform(0.05, 0.2, n))
    gross = np.nan_to_num(net) + cost
    parts = np.round(shares * gross[:, None])
    parts[:, 0] += gross - parts.sum(axis=1)  # rounding goes to wages, so the parts add up exactly
    return pd.DataFrame({"wage": parts[:, 0], "business": parts[:, 1], "property": parts[:, 2],
                         "transfer": parts[:, 3], "cost": cost, "net": net})


def national_export(county: County, seed: int = 0, size_changes: float = 0.03) -> pd.DataFrame:
    """The national system's export: one row per person, household fields repeated (see the module docstring)."""
    h = _plain(county.households)
    rng = np.random.default_rng(seed + 41)
    people = _people(county, seed)
    inc = _incomes(county, seed)
    size = pd.to_numeric(h["members"], errors="coerce").fillna(1).astype(int).to_numpy()
    annual = np.where(rng.random(len(h)) < size_changes, np.maximum(1, size + rng.choice([-1, 1], len(h))), size)
    house = pd.DataFrame({
        "县": h["county"], "乡": h["township"], "村": h["village"], "户编号": h["household_id"],
        "户类型": h["registered_status"].map(HOUSEHOLD_TYPE).fillna("一般农户"),
        "监测对象类别": _recorded(h, "county_category"), "风险是否已消除": _recorded(h, "risk_removed"),
        "识别监测时间": _recorded(h, "monitoring_start"), "是否军烈属": "否",
        "工资性收入": inc["wage"], "公益性岗位收入": 0, "其他工资性收入": 0, "生产经营性收入": inc["business"],
        "财产性收入": inc["property"], "其他财产性收入（旧指标）": 0, "资产收益扶贫分红收入": 0,
        "转移性收入": inc["transfer"], "养老金或离退休金": 0, "计划生育金": 0, "生态补偿金": 0, "最低生活保障金": 0,
        "特困人员救助供养金": 0, "其他转移性收入": 0, "产业奖励": 0, "就业奖励": 0,
        "生产经营性支出": inc["cost"], "生产经营性支出（合计）": inc["cost"], "专项用于减少生产经营性支出的补贴": 0,
        "年收入（元）": inc[["wage", "business", "property", "transfer"]].sum(axis=1), "纯收入（元）": inc["net"],
        "当前家庭人口数": size, "年度家庭人口数": annual,
        "人均纯收入（元）": np.round(inc["net"].to_numpy() / annual, 2),
        "耕地面积（亩）": np.round(rng.uniform(0.5, 6, len(h)), 1), "林地面积（亩）": np.round(rng.uniform(0, 10, len(h)), 1),
        "是否危房户": np.where(h["housing_secured"] == "否", "是", "否"),
        "住房面积": np.round(rng.uniform(40, 160, len(h))), "是否解决安全饮用水": "是",
        "主要致贫原因": h["poverty_cause"].fillna(""),
    })
    house.loc[h["net_income"].isna().to_numpy(), ["纯收入（元）", "人均纯收入（元）", "工资性收入"]] = None
    merged = people.merge(house, left_on="household_id", right_on="户编号", how="left")
    heads = people[people["index"] == 0].set_index("household_id")
    merged["户主姓名"] = merged["household_id"].map(heads["name"])
    merged["户主证件号码"] = merged["household_id"].map(heads["id_number"])
    merged["户联系电话"] = [f"1{rng.integers(3, 10)}{rng.integers(0, 10**9):09d}" for _ in range(len(merged))]
    merged["户联系电话"] = merged["household_id"].map(merged.groupby("household_id")["户联系电话"].first())
    person = pd.DataFrame({
        "人口编号": merged["person_id"], "姓名": merged["name"], "证件号码": merged["id_number"], "证件类型": "居民身份证",
        "与户主关系": merged["relation"], "性别": np.where(rng.random(len(merged)) < 0.5, "男", "女"),
        "出生日期": merged["born"], "民族": "汉族", "文化程度": "初中", "在校生状况": "", "劳动技能": merged["labour"],
        "务工时间（月）": np.where(merged["labour"].isin(["普通劳动力", "技能劳动力"]), rng.integers(0, 12, len(merged)), 0),
        "健康状况": merged["health"], "是否参加城乡居民基本医疗保险": "是", "是否享受农村居民最低生活保障": "否",
        "是否特困供养人员": "否",
    })
    columns = ["县", "乡", "村", "户编号", "户主姓名", "户主证件号码", "户联系电话", "户类型", "监测对象类别", "是否军烈属"]
    rest = merged[[c for c in house.columns if c not in columns]]
    return pd.concat([merged[columns].reset_index(drop=True), rest.reset_index(drop=True),
                      person.reset_index(drop=True)], axis=1)


def monitoring_export(county: County, seed: int = 0) -> pd.DataFrame:
    """The monitoring export: exited and monitored households, one row per person (see the module docstring)."""
    h = _plain(county.households)
    rng = np.random.default_rng(seed + 53)
    chosen = (h["registered_status"] == "exited").to_numpy() | (rng.random(len(h)) < 0.08)
    sub = County(county.households.reset_index(drop=True)[chosen].reset_index(drop=True), county.members)
    people = _people(sub, seed)
    inc = _incomes(sub, seed)
    s = _plain(sub.households)
    size = pd.to_numeric(s["members"], errors="coerce").fillna(1).astype(int).to_numpy()
    monitored = rng.random(len(s)) < 0.3
    category = np.where(monitored, np.where(s["registered_status"] == "exited", "脱贫不稳定户",
                                            rng.choice(["边缘易致贫户", "突发严重困难户"], len(s))), "")
    since = np.where(monitored, [f"2021{rng.integers(1, 13):02d}" for _ in range(len(s))], "")
    removed = np.where(monitored, np.where(rng.random(len(s)) < 0.3, "是", "否"), "")
    if "county_category" in s:  # a county of the regime from 2021 has its own record: the export carries it
        category, since, removed = (_recorded(s, c).to_numpy() for c in
                                    ("county_category", "monitoring_start", "risk_removed"))
        monitored = category != ""
    risk = np.where(s["expenditure_cause"].isin(["因病", "因残", "因灾"]), s["expenditure_cause"].fillna(""),
                    rng.choice(["因务工就业不稳", "缺劳动力", "因意外事故", "因产业项目失败", "其他"], len(s)))
    house = pd.DataFrame({
        "县": s["county"], "乡": s["township"], "村": s["village"], "户编号": s["household_id"],
        "户类型": np.where(s["registered_status"] == "exited", "脱贫户", "监测户"), "监测对象类别": category,
        "致贫/返贫风险1": np.where(monitored, risk, ""), "致贫/返贫风险2": "", "致贫/返贫风险3": "",
        "识别监测时间": since, "风险是否已消除": removed,
        "风险消除方式": "", "消除监测时间": "",
        "合规自付支出": s["rigid_expenditure"].fillna("0"),
        "工资性收入": inc["wage"], "生产经营性收入": inc["business"], "财产性收入": inc["property"],
        "转移性收入": inc["transfer"], "生产经营性支出": inc["cost"], "家庭人口数": size,
        "人均纯收入（元）": np.round(inc["net"].to_numpy() / size, 2),
    })
    merged = people.merge(house, left_on="household_id", right_on="户编号", how="left")
    heads = people[people["index"] == 0].set_index("household_id")
    merged["户主姓名"] = merged["household_id"].map(heads["name"])
    person = pd.DataFrame({"人口编号": merged["person_id"], "姓名": merged["name"], "证件号码": merged["id_number"],
                           "与户主关系": merged["relation"], "劳动技能": merged["labour"],
                           "健康状况": merged["health"]})
    front = ["县", "乡", "村", "户编号", "户主姓名"]
    return pd.concat([merged[front].reset_index(drop=True), person.reset_index(drop=True),
                      merged[[c for c in house.columns if c not in front]].reset_index(drop=True)], axis=1)


def roster(county: County, seed: int = 0) -> pd.DataFrame:
    """A township roster's table (the header's two levels are written by `write_roster`)."""
    h = _plain(county.households)
    people = _people(county, seed)
    heads = people[people["index"] == 0].set_index("household_id")
    inc = _incomes(county, seed)
    size = pd.to_numeric(h["members"], errors="coerce")
    rng = np.random.default_rng(seed + 67)

    def money(values: pd.Series | np.ndarray) -> list:
        values = pd.Series(values)
        return [None if pd.isna(v) or v == 0 else (f"{int(v)}元" if rng.random() < 0.3 else int(v)) for v in values]

    frame = pd.DataFrame({
        "序号": np.arange(1, len(h) + 1), "乡（镇）": h["township"], "村": h["village"], "户编号": h["household_id"],
        "户主姓名": h["household_id"].map(heads["name"]), "身份证号码": h["household_id"].map(heads["id_number"]),
        "家庭人口（人）": h["members"], "工资性收入": money(inc["wage"]), "生产经营性收入": money(inc["business"]),
        "财产性收入": money(inc["property"]), "转移性收入": money(inc["transfer"]),
        "生产经营性支出": money(inc["cost"]),
        "人均纯收入（元）": np.round(inc["net"].to_numpy() / size.to_numpy(), 2),
        "户类型": h["registered_status"].map(HOUSEHOLD_TYPE),
    })
    for column, header in (("food_secure", "不愁吃"), ("clothing_secure", "不愁穿"), ("education_secured", "义务教育有保障"),
                           ("medical_secured", "基本医疗有保障"), ("housing_secured", "住房安全有保障"),
                           ("ex_public_employee", "有财政供养或国企稳定工资人员"), ("ex_village_cadre", "有村支书或村主任"),
                           ("ex_urban_property", "城镇购房或门市房"), ("ex_urban_property_rebuild", "因灾重建或拆迁建房"),
                           ("ex_vehicle", "有小轿车工程机械或大型农机"), ("ex_business", "有注册企业或长期雇工"),
                           ("ex_costly_schooling", "高费择校私立或自费留学"),
                           ("hardship_approved", "特殊困难经村民代表会议评议通过")):
        frame[header] = h[column].map(MARK)
    if "county_category" in h:  # a roster of the regime years carries the county's monitoring record
        frame["监测对象类别"] = _recorded(h, "county_category")
        frame["风险是否已消除"] = _recorded(h, "risk_removed").map(MARK).fillna("")
    frame["上年家庭纯收入"] = h["net_income_last_year"]
    frame["劳动力人数"] = h["able_bodied"]
    frame["主要致贫原因"] = h["poverty_cause"]
    frame.loc[h["net_income"].isna().to_numpy(), ["工资性收入", "人均纯收入（元）"]] = None
    return frame


LAYOUTS = ("national_export", "township_roster", "monitoring_export", "four_look_sheet")
INCOME_PARTS = ["工资性收入", "生产经营性收入", "财产性收入", "转移性收入", "生产经营性支出"]


def four_look(county: County, seed: int = 0) -> pd.DataFrame:
    """A 四看法 sheet: each look's sub-items (summing to the look's points) and 小计, 总分, 评议结果."""
    h = _plain(county.households)
    people = _people(county, seed)
    heads = people[people["index"] == 0].set_index("household_id")
    looks = {k: pd.to_numeric(h[k], errors="coerce").fillna(0).to_numpy() for k in
             ("look_house", "look_grain", "look_labor", "look_study")}
    frame = pd.DataFrame({"序号": np.arange(1, len(h) + 1), "户主姓名": h["household_id"].map(heads["name"]),
                          "身份证号码": h["household_id"].map(heads["id_number"])})
    for look, (title, items) in FOUR_LOOK.items():
        points = looks[look]
        weights = np.array([p for _, p in items], dtype=float)
        parts = np.floor(points[:, None] * weights / weights.sum())
        parts[:, 0] += points - parts.sum(axis=1)
        for (item, p), j in zip(items, range(len(items)), strict=True):
            frame[(title, f"{item}（{p}分）")] = parts[:, j]
        frame[(title, "小计")] = points
    total = sum(looks.values())
    frame["总分"] = total
    frame["评议结果"] = np.where(total < 60, "贫困户", "非贫困户")
    return frame


FOUR_LOOK = {
    "look_house": ("一看房（20分）", [("住房条件", 5), ("住房面积", 5), ("入户路", 4), ("饮水", 2), ("用电", 2),
                                   ("生产条件", 2)]),
    "look_grain": ("二看粮（30分）", [("人均耕地", 8), ("种植结构", 8), ("人均粮食", 6), ("人均养殖收入", 8)]),
    "look_labor": ("三看劳动力（30分）", [("劳动力占比", 8), ("健康状况", 8), ("劳动技能", 8), ("人均务工收入", 6)]),
    "look_study": ("四看读书郎（20分）", [("教育负债", 12), ("教育回报", 8)]),
}


def write_with_title(frame: pd.DataFrame, path: Path | str, titles: list[str], footer: list[list] | None = None,
                     groups: dict[str, list[str]] | None = None) -> Path:
    """An xlsx sheet as counties keep it: title lines, a header (two levels, merged, where `groups` says or
    where columns are (group, leaf) tuples), the table, then footer lines (合计, signatures). A `.csv` path gets
    the same sheet as Excel saves it for a Chinese county: GB18030, a merged cell's text in its first cell."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        return _write_grid_csv(frame, path, titles, footer or [], groups or {})
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Sheet1")
    columns = list(frame.columns)
    tops, leaves = _header_levels(columns, groups or {})
    two_levels = any(t is not None for t in tops)
    width = len(columns)
    for r, title in enumerate(titles):
        if r == 0:
            sheet.merge_range(r, 0, r, width - 1, title)
        else:
            sheet.write(r, 0, title)
    top = len(titles)
    j = 0
    while j < width:
        if two_levels and tops[j] is None:
            sheet.merge_range(top, j, top + 1, j, leaves[j])
            j += 1
            continue
        if not two_levels:
            sheet.write(top, j, leaves[j])
            j += 1
            continue
        end = j
        while end + 1 < width and tops[end + 1] == tops[j]:
            end += 1
        if end > j:
            sheet.merge_range(top, j, top, end, tops[j])
        else:
            sheet.write(top, j, tops[j])
        for k in range(j, end + 1):
            sheet.write(top + 1, k, leaves[k])
        j = end + 1
    start = top + (2 if two_levels else 1)
    for i, row in enumerate(frame.itertuples(index=False)):
        for k, value in enumerate(row):
            if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
                continue
            if isinstance(value, int | float | np.integer | np.floating):
                sheet.write_number(start + i, k, float(value))
            else:
                sheet.write_string(start + i, k, str(value))
    for i, line in enumerate(footer or []):
        for k, value in enumerate(line):
            if value is not None:
                sheet.write(start + len(frame) + i, k, value)
    book.close()
    return path


def _header_levels(columns: list, groups: dict[str, list[str]]) -> tuple[list, list]:
    """Each column's group (None outside a group) and its own header, from `groups` or (group, leaf) tuples."""
    leaf_group = {leaf: g for g, leaves in groups.items() for leaf in leaves}
    return ([c[0] if isinstance(c, tuple) else leaf_group.get(c) for c in columns],
            [c[1] if isinstance(c, tuple) else c for c in columns])


def _write_grid_csv(frame: pd.DataFrame, path: Path, titles: list[str], footer: list[list],
                    groups: dict[str, list[str]]) -> Path:
    columns = list(frame.columns)
    tops, leaves = _header_levels(columns, groups)
    width = len(columns)
    grid: list[list] = [[title, *[None] * (width - 1)] for title in titles]
    if any(t is not None for t in tops):
        grid.append([leaf if top is None else top if j == 0 or tops[j - 1] != top else None
                     for j, (top, leaf) in enumerate(zip(tops, leaves, strict=True))])
        grid.append([None if top is None else leaf for top, leaf in zip(tops, leaves, strict=True)])
    else:
        grid.append(leaves)
    body = frame.astype(object).where(frame.notna(), None)
    grid += [[_csv_cell(v) for v in row] for row in body.itertuples(index=False)]
    grid += [[*line, *[None] * (width - len(line))] for line in footer]
    pd.DataFrame(grid).to_csv(path, index=False, header=False, encoding="gb18030")
    return path


def _csv_cell(value):
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)  # (as a spreadsheet shows a whole number)
    return value


def write_layout(county: County, layout: str, path: Path | str, seed: int = 0, year: int = 2020) -> Path:
    """Write `county` in `layout` to `path`: .xlsx, or .csv as a Chinese Excel saves it (GB18030)."""
    path = Path(path)
    place = str(county.households["county"].iloc[0]) if len(county.households) else "示范县"
    if layout == "national_export":
        frame = national_export(county, seed)
        if path.suffix.lower() == ".csv":
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path, index=False, encoding="gb18030")
            return path
        return write_with_title(frame, path, [])
    if layout == "monitoring_export":
        frame = monitoring_export(county, seed)
        return write_with_title(frame, path, [f"{place}防止返贫监测对象信息",
                                              f"导出单位：{place}乡村振兴局  导出时间：{year + 1}-03-01  数据截止：{year}-12-31"])
    if layout == "township_roster":
        frame = roster(county, seed)
        town = str(county.households["township"].iloc[0]) if len(county.households) else "示范乡"
        income = frame[INCOME_PARTS].apply(lambda c: pd.to_numeric(c.astype(str).str.rstrip("元"), errors="coerce"))
        footer = [["合计", None, None, None, None, None,
                   int(pd.to_numeric(frame["家庭人口（人）"], errors="coerce").sum()),
                   *[int(income[c].sum()) for c in INCOME_PARTS]],
                  [None, "填表人：张某某", None, None, "审核人：李某某", None, None, "联系电话：0859-1234567"]]
        return write_with_title(frame, path, [f"{place}{town}{year}年建档立卡贫困户花名册",
                                              "填报单位：（盖章）        填报日期：    年  月  日"],
                                footer, groups={"家庭年收入（元）": INCOME_PARTS})
    if layout == "four_look_sheet":
        frame = four_look(county, seed)
        return write_with_title(frame, path, [f"{place}{year}年精准扶贫“四看法”评分表"],
                                [[None, "评议小组成员签字：", None, None, "村委会（盖章）"]])
    raise ValueError(f"unknown layout {layout!r}")
