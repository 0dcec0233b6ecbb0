"""The column contract (shared/contract/household-columns.md) as data: names, Chinese headers, types."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["text", "number", "int", "month", "bool", "choice", "id_number"]


@dataclass(frozen=True)
class Column:
    name: str
    zh: str
    kind: Kind
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    #: for kind "choice": accepted spellings -> canonical value
    choices: dict[str, str] = field(default_factory=dict)
    #: other accepted headers besides the English name and `zh`
    aliases: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        """The expression-language type of this column."""
        return {"number": "number", "int": "number", "month": "number", "bool": "bool"}.get(self.kind, "text")


def _choices(**canonical: tuple[str, ...]) -> dict[str, str]:
    return {spelling: value for value, spellings in canonical.items() for spelling in (value, *spellings)}


REGISTERED = _choices(none=("未建档", "非建档立卡户", "一般户"), poor=("贫困户", "建档立卡贫困户", "未脱贫"),
                      exited=("已脱贫", "脱贫户"))
CAUSES = _choices(因病=("illness",), 因残=("disability",), 因灾=("disaster",), 因疫情=("epidemic",),
                  其他=("other",))
MONITORING_CATEGORIES = _choices(unstable_exited=("脱贫不稳定户", "不稳定户"), edge=("边缘易致贫户", "边缘户"),
                                 sudden_hardship=("突发严重困难户", "严重困难户"), none=("非监测对象", "无"))
SITUATIONS = _choices(
    none=("无", "-"),
    married_in=("入赘", "嫁入", "入赘/嫁入"),
    married_out=("嫁出",),
    student_hukou_moved=("因学迁出户口的在校生", "因学迁出"),
    cohabiting_no_hukou=("共同生活无户籍", "共同生活的无户籍人口"),
    conscript=("义务兵", "应征入伍的义务兵"),
)

HOUSEHOLD_COLUMNS: tuple[Column, ...] = (
    Column("household_id", "户编号", "text", required=True),
    Column("county", "县", "text", aliases=("县区", "县（市、区）")),
    Column("township", "乡镇", "text"),
    Column("village", "村", "text", aliases=("行政村",)),
    Column("year", "年度", "int", minimum=2000, maximum=2100),
    Column("members", "家庭人口", "int", required=True, minimum=1),
    Column("net_income", "家庭年纯收入", "number", required=True),
    Column("net_income_last_year", "上年家庭纯收入", "number"),
    Column("rigid_expenditure", "刚性支出", "number", minimum=0),
    Column("expenditure_cause", "支出原因", "choice", choices=CAUSES),
    Column("food_secure", "不愁吃", "bool"),
    Column("clothing_secure", "不愁穿", "bool"),
    Column("education_secured", "义务教育有保障", "bool"),
    Column("medical_secured", "基本医疗有保障", "bool"),
    Column("housing_secured", "住房安全有保障", "bool"),
    Column("look_house", "一看房", "number", minimum=0),
    Column("look_grain", "二看粮", "number", minimum=0),
    Column("look_labor", "三看劳动力", "number", minimum=0),
    Column("look_study", "四看读书郎", "number", minimum=0),
    Column("four_look_score", "四看法评分", "number", minimum=0, maximum=100),
    Column("ex_public_employee", "有在国家机关或国有企事业单位工作且有稳定工资收入人员", "bool",
           aliases=("有财政供养或国企稳定工资人员",)),  # the earlier header, still read
    Column("ex_village_cadre", "有村支书或村主任", "bool"),
    Column("ex_urban_property", "城镇购房或门市房", "bool"),
    Column("ex_urban_property_rebuild", "因灾重建或拆迁建房", "bool"),
    Column("ex_vehicle", "有小轿车（含面包车）工程机械或大型农机具", "bool",
           aliases=("有小轿车工程机械或大型农机",)),  # the earlier header, still read
    Column("ex_business", "有注册企业或长期雇工", "bool"),
    Column("ex_costly_schooling", "高费择校私立或自费留学", "bool"),
    Column("hardship_approved", "特殊困难经村民代表会议评议通过", "bool"),
    Column("registered_status", "建档立卡状态", "choice", choices=REGISTERED),
    Column("exit_year", "脱贫年度", "int", minimum=2000, maximum=2100),
    Column("able_bodied", "劳动力人数", "int", minimum=0),
    Column("poverty_cause", "主要致贫原因", "text"),
    # the monitoring regime from 2021 (M21-3, M21-5); the county's own category and removal flag are carried
    # into the decisions for comparison, never read by a rule
    Column("compliant_spending", "合规自付支出", "number", minimum=0),
    Column("water_secured", "饮水安全有保障", "bool"),
    Column("monitoring_start", "识别监测时间", "month", minimum=200001, maximum=210012),  # YYYYMM
    Column("assistance_measures", "帮扶措施数", "int", minimum=0),
    Column("risk_removed", "风险是否已消除", "bool"),
    Column("county_category", "监测对象类别", "choice", choices=MONITORING_CATEGORIES),
    #: checked against GB 11643 (birth date, check digit); masked in every output
    Column("householder_id_number", "户主身份证号码", "id_number", aliases=("户主证件号码", "户主身份证号")),
)

MEMBER_COLUMNS: tuple[Column, ...] = (
    Column("household_id", "户编号", "text", required=True),
    Column("member_id", "成员编号", "text", required=True),
    Column("relation", "关系", "text", aliases=("与户主关系",)),
    Column("on_hukou", "在户口簿", "bool"),
    Column("resident", "常住", "bool"),
    Column("situation", "情形", "choice", choices=SITUATIONS),
    Column("id_number", "身份证号码", "id_number", aliases=("证件号码", "身份证号", "公民身份号码")),
)

#: Output columns of a decision file, in contract order.
DECISION_COLUMNS: tuple[str, ...] = (
    "household_id", "year", "poverty_line", "monitoring_line", "per_capita_income", "four_look_score",
    "identification", "exit", "monitoring", "monitoring_triggers", "reasons", "rules_version",
)
#: Output columns of an errors file (`file` extends the contract so members-file rows can be named too).
ERROR_COLUMNS: tuple[str, ...] = ("row", "household_id", "column", "value", "error", "file")

TRUE_WORDS = frozenset({"是", "有", "true", "1", "y", "yes", "√", "1.0", "t"})
FALSE_WORDS = frozenset({"否", "无", "false", "0", "n", "no", "×", "0.0", "f"})


def normalize_header(header: object) -> str:
    """Fold a header for matching: NFKC (full-width to half-width), no spaces or punctuation, lower case."""
    text = unicodedata.normalize("NFKC", str(header)).lower()
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch).startswith("P")))


def header_map(columns: tuple[Column, ...]) -> dict[str, Column]:
    """Normalized header -> column, for the English name, the Chinese header and aliases."""
    return {normalize_header(h): c for c in columns for h in (c.name, c.zh, *c.aliases)}
