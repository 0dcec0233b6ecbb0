"""核查: the county's records against the rules — 疑似错评, 漏评, 错退 per township and village, as data."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from povertyrules import score
from povertyrules.cli.main import app
from povertyrules.errors import RuleError
from povertyrules.store.database import connect
from povertyrules.store.review import CHECKS_FILE, review
from povertyrules.store.runs import record_run

from .conftest import households

POOR = {"net_income": "6000", "net_income_last_year": "5800", "four_look_score": "40"}  # 3,000 a head, 40 points
RICH = {"net_income": "20000", "net_income_last_year": "19000", "four_look_score": "75"}
COUNTY = households(
    {"household_id": "h1", "township": "甲乡", "village": "一村", "registered_status": "poor", "clothing_secure": "否",
     **RICH},  # not poor by the rules, and not meeting the exit criteria either: 错评
    {"household_id": "h10", "township": "甲乡", "village": "一村", "registered_status": "poor", **RICH},  # may exit
    {"household_id": "h2", "township": "甲乡", "village": "一村", "registered_status": "poor", **POOR},
    {"household_id": "h3", "township": "甲乡", "village": "二村", "registered_status": "none", **POOR},
    {"household_id": "h4", "township": "甲乡", "village": "二村", "registered_status": "none", **RICH},
    {"household_id": "h5", "township": "乙镇", "village": "三村", "registered_status": "exited", "exit_year": "2020",
     **POOR},
    {"household_id": "h6", "township": "乙镇", "village": "三村", "registered_status": "exited", "exit_year": "2020",
     **RICH},
    {"household_id": "h7", "township": "乙镇", "village": "三村", "registered_status": "exited", "exit_year": "2016",
     **POOR},  # exited years ago: not a 错退 of the year reviewed
    {"household_id": "h8", "township": "乙镇", "village": "四村", "registered_status": "", **POOR},
    {"household_id": "h9", "township": "", "village": "五村", "registered_status": "poor", "ex_vehicle": "是", **POOR},
)


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("review") / "audit.db")
    record_run(connect(db), score(COUNTY, keep_records=True), "county.csv")
    return db


def _flagged(result) -> dict[str, set[str]]:
    return {r.spec.id: set(result.decisions["household_id"][r.flagged]) for r in result.checked}


def test_each_check_flags_the_households_whose_record_disagrees_with_the_rules(stored):
    result = review(connect(stored))
    decided = result.decisions.set_index("household_id")
    # the rules' own decisions, read back, are what the records are compared with
    assert decided.loc["h1", "identification"] == "not_poor" and decided.loc["h9", "identification"] == "excluded"
    assert decided.loc["h3", "identification"] == "poor"
    assert decided.loc["h10", "exit"] == "eligible" and decided.loc["h1", "exit"] == "not_eligible"
    assert _flagged(result) == {"wrongly_identified": {"h1", "h9"}, "due_to_exit": {"h10"}, "missed": {"h3"},
                                "wrongly_exited": {"h5"}}  # a registered household that may exit is not 错评
    summary = result.summary("en").set_index("check")
    assert summary.loc["suspected wrongly identified", "households checked"] == 4  # h1, h2, h9, h10 recorded poor
    assert summary.loc["suspected wrongly identified", "rate"] == pytest.approx(2 / 4, abs=1e-4)
    assert summary.loc["suspected wrongly exited", "households checked"] == 2  # h5, h6 exited in 2020
    # h8's record is blank: it cannot be checked, and is never counted as flagged
    assert summary.loc["suspected missed", "cannot be checked"] == 1


def test_checks_whose_columns_or_decisions_the_run_lacks_say_so(stored):
    result = review(connect(stored))
    not_checked = {r.spec.id: r.why_not for r in result.results if not r.checked}
    # 监测对象类别 and 风险是否已消除 are not in this rule set: those checks wait for them, with the reason
    assert set(not_checked) <= {"missed_monitoring", "unsupported_risk_removal"}
    for reason in not_checked.values():
        assert reason.zh and not re.search(r"[a-z]+_[a-z_]+", reason.zh)


def test_counts_and_rates_per_township_and_village_with_blank_places_as_unfilled(stored):
    result = review(connect(stored))
    townships = result.by_place("township").set_index("乡镇")
    assert list(townships.index) == [*sorted(["甲乡", "乙镇", "未填"]), "合计"]
    assert townships.loc["甲乡", "户数"] == 5 and townships.loc["未填", "疑似错评"] == 1
    assert townships.loc["甲乡", "疑似错评·比例"] == pytest.approx(1 / 3, abs=1e-4)  # h1 of h1, h2, h10
    assert townships.loc["合计", "疑似错评"] == 2 and townships.loc["合计", "户数"] == len(COUNTY)
    villages = result.by_place("village")
    assert villages[villages["村"] == "二村"]["疑似漏评"].item() == 1


def test_a_new_recorded_column_plugs_in_by_adding_a_check(stored, tmp_path):
    spec = yaml.safe_load(CHECKS_FILE.read_text(encoding="utf-8"))
    spec["checks"] = [
        {"id": "low_score_exited", "label": {"zh": "低分脱贫", "en": "exited on a low score"}, "clause": "EX-1",
         "description": {"zh": "已脱贫但四看法不足60分", "en": "exited with a score under 60"},
         "recorded": ["registered_status"], "among": "registered_status == 'exited'",
         "when": "registered_status == 'exited' and four_look_total < 60"},
        {"id": "cause", "label": {"zh": "致贫原因", "en": "cause"}, "clause": "ID-5",
         "description": {"zh": "无", "en": "none"}, "recorded": ["poverty_cause"],
         "among": "registered_status == 'poor'", "when": "poverty_cause is missing"},
    ]
    path = tmp_path / "checks.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    result = review(connect(stored), checks=path)
    assert _flagged(result) == {"low_score_exited": {"h5", "h7"}}
    assert [r.spec.id for r in result.results if not r.checked] == ["cause"]  # no 主要致贫原因 in the input
    assert "主要致贫原因" in result.results[1].why_not.zh
    spec["checks"][0]["when"] = "registered_status == 'exited' and __import__('os')"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleError):
        review(connect(stored), checks=path)


def test_the_review_command_prints_the_counts_and_writes_the_workbook(stored, tmp_path):
    out = tmp_path / "核查.xlsx"
    result = CliRunner().invoke(app, ["review", "--db", stored, "-o", str(out), "--link", "http://127.0.0.1:8000"])
    assert result.exit_code == 0, result.output
    assert "疑似错评（ID-3, ID-2.3）：2 户，占核查范围 4 户的 50.0%" in result.output
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", result.output)  # no internal names in the Chinese output
    sheets = pd.read_excel(out, sheet_name=None, engine="calamine")
    assert list(sheets) == ["核查汇总", "分乡镇", "分村", "疑似问题户"]
    flagged = sheets["疑似问题户"]
    assert sorted(flagged["户编号"]) == ["h1", "h10", "h3", "h5", "h9"]
    assert flagged["查看判定依据"].str.match(r"http://127\.0\.0\.1:8000/decision/\d+$").all()
    codes = r"\b(?:poor|not_poor|excluded|exited|none)\b"
    assert not flagged.drop(columns=["查看判定依据"]).astype(str).apply(lambda c: c.str.contains(codes)).any().any()
    english = CliRunner().invoke(app, ["核查", "1", "--db", stored, "--lang", "en"])
    assert english.exit_code == 0 and "suspected wrongly identified (ID-3, ID-2.3): 2 of 4" in english.output


@pytest.mark.parametrize("command", [["核查", "1"], ["watchlist", "--run", "1"], ["diff", "1", "1"]])
def test_a_workbook_written_onto_the_store_it_reads_is_refused(stored, tmp_path, command):
    import shutil

    db = tmp_path / "copy.db"
    shutil.copy(stored, db)
    before = db.read_bytes()
    result = CliRunner().invoke(app, [*command, "--db", str(db), "-o", str(db)])
    assert result.exit_code == 2 and "覆盖原表" in result.output, result.output
    assert db.read_bytes() == before


READ_ONLY = [["review"], ["核查"], ["runs"], ["explain", "h1"], ["history", "h1"], ["diff", "1", "2"],
             ["watchlist", "-o", "{out}/w.xlsx"], ["alerts"], ["procedure", "show", "h1"], ["serve"],
             ["serve", "--host", "0.0.0.0"], ["store", "verify"], ["access-log"],
             # a writer that can only act on what a store already holds (an alert) creates none either
             ["confirm", "1", "--actor", "县扶贫办"]]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_no_read_only_command_creates_a_store(tmp_path, command):
    folder = tmp_path / "store"
    folder.mkdir()
    missing = folder / "nowhere.db"
    args = [a.replace("{out}", str(tmp_path)) for a in command]
    result = CliRunner().invoke(app, [*args, "--db", str(missing)])
    assert result.exit_code != 0, result.output
    assert list(folder.iterdir()) == []  # no database, no key file, no journal
    assert not (tmp_path / "w.xlsx").exists()
    # said in both languages, naming the file; never a traceback
    assert "审计库文件不存在" in result.output and "no audit store" in result.output
    assert "nowhere.db" in result.output and result.exc_info[0] is SystemExit


# -- the county's own monitoring record, read from the files counties hold -----------------------------------
CATEGORY = {"脱贫不稳定户": "unstable_exited", "边缘易致贫户": "edge", "突发严重困难户": "sudden_hardship"}
MONITORED = {"unstable_exited", "edge", "returned", "sudden_hardship"}


@pytest.fixture(scope="module")
def county_2023():
    from povertyrules.datasets.synth import synth

    return synth(300, seed=5, year=2023, bad_rate=0.0, blank_rate=0.0)


def _score_stored(path, db, out) -> tuple[pd.DataFrame, int]:
    result = CliRunner().invoke(app, ["score", str(path), "--year", "2023", "--province", "云南省", "--lang", "en",
                                      "-o", str(out), "--store", "--db", db])
    assert result.exit_code == 0, result.output
    decisions = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("household_id")
    return decisions, int(result.output.strip().splitlines()[-1])


def _households_of(frame: pd.DataFrame, column: str) -> pd.Series:
    """A household field of a person-row export, as the file holds it (one value per 户编号)."""
    return frame.drop_duplicates("户编号").set_index("户编号")[column].fillna("").astype(str)


def test_a_national_export_with_its_monitoring_columns_gives_the_review_the_countys_categories(county_2023, tmp_path):
    from povertyrules.datasets.layouts import national_export

    frame = national_export(county_2023, seed=5)
    assert {"监测对象类别", "风险是否已消除", "识别监测时间"} <= set(frame.columns)  # the generator writes them
    # households below 云南's 2023 line (8,050) in a dangerous house: the rules monitor them (M21-3 突出困难问题);
    # the county recorded a category for some of them and none for the others
    low = _households_of(frame, "人均纯收入（元）").astype(float) < 6000
    chosen = list(low[low].index[:6])
    frame.loc[frame["户编号"].isin(chosen), "是否危房户"] = "是"
    unrecorded, recorded = chosen[:4], chosen[4:]
    frame.loc[frame["户编号"].isin(unrecorded), "监测对象类别"] = ""
    frame.loc[frame["户编号"].isin(recorded), "监测对象类别"] = "边缘易致贫户"
    path = tmp_path / "national_2023.csv"
    frame.to_csv(path, index=False)
    db = str(tmp_path / "audit.db")
    decisions, run_id = _score_stored(path, db, tmp_path / "national.csv")
    result = review(connect(db), run_id)
    stored = result.inputs.set_index(result.decisions["household_id"])
    # the record as the county wrote it, in the contract's values, is what was stored and compared
    category = _households_of(frame, "监测对象类别").map(CATEGORY)
    assert stored["county_category"].reindex(category.index).fillna("").equals(category.fillna(""))
    missed = {r.spec.id: r for r in result.results}["missed_monitoring"]
    assert missed.checked
    flagged = set(result.decisions["household_id"][missed.flagged])
    monitored = decisions.index[decisions["monitoring"].isin(MONITORED)]
    assert flagged == {h for h in monitored if category.get(h) is None or pd.isna(category.get(h))}
    assert set(unrecorded) <= flagged and not flagged & set(recorded)  # the recorded category is what decides


def test_a_monitoring_export_gives_the_review_the_countys_risk_removals(county_2023, tmp_path):
    from povertyrules.datasets.layouts import monitoring_export

    frame = monitoring_export(county_2023, seed=5)
    since = _households_of(frame, "识别监测时间")
    under = list(since[since != ""].index)
    # the generator carries the county's own record (synth's county_category, risk_removed, monitoring_start)
    own = county_2023.households.set_index("household_id")
    assert (since[under] == own.loc[under, "monitoring_start"].astype(str)).all()
    path = tmp_path / "monitoring_2023.csv"
    frame.to_csv(path, index=False)
    db = str(tmp_path / "audit.db")
    decisions, run_id = _score_stored(path, db, tmp_path / "monitoring.csv")
    # households the rules say are not cleared, recorded as not removed: the county now records them removed; and
    # households whose removal the file cannot decide (no 帮扶措施 column), recorded removed too
    not_cleared = [h for h in under if decisions.loc[h, "risk_removal"] in ("not_removed", "safety_net")]
    undecided = list(decisions.index[decisions["risk_removal"] == "review"])
    removed = _households_of(frame, "风险是否已消除")
    switched = [h for h in not_cleared if removed[h] == "否"][:3]
    assert switched and undecided  # both kinds are present
    frame.loc[frame["户编号"].isin([*switched, *undecided]), "风险是否已消除"] = "是"
    frame.to_csv(path, index=False)
    decisions, run_id = _score_stored(path, db, tmp_path / "monitoring.csv")
    result = review(connect(db), run_id)
    check = {r.spec.id: r for r in result.results}["unsupported_risk_removal"]
    assert check.checked
    removed = _households_of(frame, "风险是否已消除")
    yes = set(removed.index[removed == "是"])
    ids = result.decisions["household_id"]
    flagged, among, unknown = (set(ids[a]) for a in (check.flagged, check.among, check.unknown))
    assert among == yes  # the households the county recorded as removed
    unsupported = {h for h in yes if decisions.loc[h, "risk_removal"] in ("not_removed", "safety_net")}
    assert set(switched) <= unsupported <= flagged
    # an undecided removal is flagged only where every way it could fall is unsupported (e.g. not removed or
    # 兜底 with labour capacity unknown); otherwise it cannot be checked — never both
    assert flagged - unsupported <= set(undecided) <= flagged | unknown and not flagged & unknown
    assert unknown <= set(undecided)
    # and the 核查 command says it, in Chinese, from the same stored run
    printed = CliRunner().invoke(app, ["核查", str(run_id), "--db", db])
    assert printed.exit_code == 0
    assert f"风险消除依据不足（M21-5）：{len(flagged)} 户，占核查范围 {len(yes)} 户" in printed.output


def test_a_roster_of_the_regime_years_carries_the_countys_record(county_2023, tmp_path):
    from povertyrules.datasets.layouts import write_layout
    from povertyrules.lang.rulebook import load_rulebook
    from povertyrules.layouts.prepare import prepare

    path = write_layout(county_2023, "township_roster", tmp_path / "roster.xlsx", seed=5, year=2023)
    prepared = prepare(path, load_rulebook()).frame.set_index("household_id")
    own = county_2023.households.set_index("household_id")
    def plain(series: pd.Series) -> list:
        return [None if pd.isna(v) else v for v in series.astype(object)]

    assert plain(prepared["county_category"]) == plain(own["county_category"].map(CATEGORY))
    assert own["county_category"].notna().any() and own["risk_removed"].notna().any()
    # √/× read as 是/否
    assert plain(prepared["risk_removed"]) == plain(own["risk_removed"].map({"是": True, "否": False}))


def test_the_review_page_in_english_names_things_in_english_with_no_internal_names_or_codes(stored):
    from fastapi.testclient import TestClient

    from povertyrules.web.app import create_app

    page = TestClient(create_app(stored)).get("/run/1/review", params={"lang": "en"}).text
    shown = re.sub(r"<[^>]+>", " ", page[page.index("<body"):])
    assert not re.findall(r"\b[a-z]+_[a-z0-9_]+\b", shown)  # household_id, registered_status, not_poor …
    assert not re.search(r"\b(?:none|not_eligible|edge|unstable_exited)\b", shown)  # status codes
    assert "registered poor" in shown and "Identification" in shown and "household" in shown
