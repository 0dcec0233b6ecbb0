"""Department registers (MON-5.1) matched to a synthetic county's national export through every member's
证件号码: each register kind, records matching no household, malformed ids, date windows, contradictions and the
evidence behind every derived fact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from povertyrules.cli.main import app
from povertyrules.datasets.layouts import _people, write_layout
from povertyrules.datasets.registers import KINDS, registers, write_registers
from povertyrules.datasets.synth import synth
from povertyrules.errors import RuleError
from povertyrules.lang.clauses import clauses
from povertyrules.lang.rulebook import load_rulebook
from povertyrules.layouts.prepare import prepare
from povertyrules.privacy import mask_text as mask_identities
from povertyrules.registers.match import apply_registers, read_register
from povertyrules.registers.spec import load_register, load_registers
from povertyrules.scoring import score

runner = CliRunner()
BOOK = load_rulebook()
CLAUSES = clauses()
REGISTERS = load_registers(Path(BOOK.root) / "registers")
SEED = 13


@pytest.fixture(scope="module")
def county():
    return synth(400, seed=SEED, bad_rate=0.0, blank_rate=0.0)


@pytest.fixture(scope="module")
def files(county, tmp_path_factory):
    folder = tmp_path_factory.mktemp("registers")
    export = write_layout(county, "national_export", folder / "export.xlsx", seed=SEED)
    write_layout(county, "four_look_sheet", folder / "four.xlsx", seed=SEED)
    return export, {p.stem: p for p in write_registers(county, folder / "reg", seed=SEED)}


@pytest.fixture(scope="module")
def prepared(files):
    return prepare(files[0], BOOK, joins=[files[0].with_name("four.xlsx")])


def run(prepared, paths, year=2020, hardship_known=False):
    reads = [read_register(p, REGISTERS[p.stem]) for p in paths]
    frame = prepared.frame.copy()
    if hardship_known:  # the village assembly's record of ID-2.4 (no register holds it)
        frame["hardship_approved"] = False
    return apply_registers(frame, prepared.ids, reads, BOOK, year)


def household_of(county, ids):
    people = _people(county, SEED).set_index("id_number")["household_id"]
    return set(people.reindex(ids).dropna())


def test_every_shipped_register_loads_and_cites_clauses_of_the_policy():
    assert set(REGISTERS) == set(KINDS)
    for register in REGISTERS.values():
        for fact in register.facts.values():
            for clause in fact.clauses:
                assert clause in CLAUSES or clause.startswith("M21-"), (register.name, clause)
        if register.event is not None:  # records arriving as monitoring events cite their clause too
            assert register.event.clause in CLAUSES, register.name


@pytest.mark.parametrize("kind, column", [("vehicles", "ex_vehicle"), ("market_entities", "ex_business"),
                                          ("state_payroll", "ex_public_employee"),
                                          ("urban_property", "ex_urban_property")])
def test_exclusion_registers_set_the_flag_for_exactly_the_households_whose_members_hold_a_counted_record(
        county, files, prepared, kind, column):
    result = run(prepared, [files[1][kind]])
    flagged = set(result.frame.loc[result.frame[column].fillna(False).astype(bool), "household_id"])
    expected = set(county.households.loc[county.households[column] == "是", "household_id"])
    if kind == "urban_property":  # 因灾重建/拆迁安置 are the carve-out, not a purchase
        rebuilt = set(county.households.loc[county.households["ex_urban_property_rebuild"] == "是", "household_id"])
        expected -= rebuilt
        assert set(result.frame.loc[result.frame["ex_urban_property_rebuild"].fillna(False).astype(bool),
                                    "household_id"]) == rebuilt & set(
            county.households.loc[county.households[column] == "是", "household_id"])
    assert flagged == expected and flagged
    # the register is complete: everyone else is known not to hold such a record
    assert result.frame[column].notna().all()
    ev = result.evidence[result.evidence["column"] == column]
    assert set(ev["household_id"]) == flagged
    assert ev["text"].str.contains(r"\d{6}\*{8}[\dX]{4}").all()
    assert not ev["text"].str.contains(r"\d{18}").any()


def test_records_of_no_household_are_counted_by_kind_and_not_used(files, prepared):
    result = run(prepared, [files[1]["vehicles"], files[1]["medical_settlements"]])
    raw = pd.read_csv(files[1]["vehicles"], dtype=str)
    strangers = raw["身份证明号码"].str.startswith("520102")
    listed = result.unmatched[result.unmatched["register"] == "车辆登记"]
    assert len(listed) == strangers.sum() > 0
    assert set(listed["row"]) == set(np.flatnonzero(strangers.to_numpy()) + 2)
    assert listed["member"].str.contains(r"\*{8}").all()
    account = next(a for a in result.accounts if a["register"] == "vehicles")
    assert account["lines"] == account["matched"] + account["outside_window"] + account["unmatched"] + \
        account["skipped"] + account["error_lines"]


def test_a_vehicle_deregistered_before_the_year_does_not_count(county, files, prepared):
    raw = pd.read_csv(files[1]["vehicles"], dtype=str)
    gone = raw[raw["注销日期"].notna()]
    assert len(gone)
    result = run(prepared, [files[1]["vehicles"]])
    assert next(a for a in result.accounts if a["register"] == "vehicles")["outside_window"] == len(gone)
    holders = household_of(county, gone["身份证明号码"])
    flagged = set(result.frame.loc[result.frame["ex_vehicle"].astype(bool), "household_id"])
    owners = set(county.households.loc[county.households["ex_vehicle"] == "是", "household_id"])
    assert (holders - owners) and not (holders - owners) & flagged


def test_a_malformed_id_number_is_an_error_with_its_line_and_the_rest_is_read(files, prepared, tmp_path):
    raw = pd.read_csv(files[1]["vehicles"], dtype=str)
    good = raw.iloc[0]["身份证明号码"]
    raw.loc[3, "身份证明号码"] = good[:-1] + ("0" if good[-1] != "0" else "1")  # wrong check digit
    raw.loc[5, "身份证明号码"] = "5.22301199001011E+17"
    raw.loc[6, "初次登记日期"] = "去年"
    path = tmp_path / "vehicles.csv"
    raw.to_csv(path, index=False)
    read = read_register(path, REGISTERS["vehicles"])
    assert sorted(read.errors["row"]) == [5, 7, 8]
    assert read.errors["error"].str.contains("校验码").any() and read.errors["error"].str.contains("数字").any()
    assert not read.errors["value"].str.contains(r"\d{18}").any()
    assert len(read.records) == len(raw) - 3


def test_medical_settlements_sum_per_household_in_the_year_and_raise_the_rigid_expenditure_trigger(
        county, files, prepared):
    result = run(prepared, [files[1]["medical_settlements"]])
    raw = pd.read_csv(files[1]["medical_settlements"], dtype={"参保人证件号码": str})
    people = _people(county, SEED).set_index("id_number")["household_id"]
    raw["household_id"] = raw["参保人证件号码"].map(people)
    expected = raw.dropna(subset=["household_id"]).groupby("household_id")["合规自付费用"].sum()
    got = result.frame.set_index("household_id")["rigid_expenditure"]
    assert np.allclose(got.reindex(expected.index), expected)
    assert (got.drop(expected.index) == 0).all()  # the 医保 file is complete: no settlement, no medical cost
    assert set(result.frame.loc[result.frame["household_id"].isin(expected.index), "expenditure_cause"]) == {"因病"}
    # last year's income known (e.g. from last year's run): the MON-2 trigger follows from the register
    frame = result.frame.assign(net_income_last_year=result.frame["net_income"], year=2020)
    decided = score(frame, rules=BOOK).decisions.set_index("household_id")
    over = expected[expected > frame.set_index("household_id")["net_income"].reindex(expected.index)]
    assert len(over)
    assert decided.loc[over.index, "monitoring_triggers"].str.contains("rigid_expenditure").all()


def test_settlements_of_another_year_are_outside_the_window(files, prepared):
    result = run(prepared, [files[1]["medical_settlements"]], year=2019)
    assert (result.frame["rigid_expenditure"] == 0).all()
    assert next(a for a in result.accounts)["matched"] == 0


def test_disaster_losses_add_to_medical_costs_and_name_the_cause(county, files, prepared):
    both = run(prepared, [files[1]["medical_settlements"], files[1]["disaster_losses"]])
    medical = run(prepared, [files[1]["medical_settlements"]])
    hit = set(county.households.loc[county.households["expenditure_cause"] == "因灾", "household_id"])
    frame = both.frame.set_index("household_id")
    assert hit and (frame.loc[sorted(hit & set(frame.index)), "expenditure_cause"] == "因灾").all()
    assert (frame["rigid_expenditure"] >= medical.frame.set_index("household_id")["rigid_expenditure"]).all()


def test_severe_disability_certificates_bound_the_households_labour_capacity(county, files, prepared, tmp_path):
    raw = pd.read_csv(files[1]["disability_certificates"], dtype=str)
    # a member the file counts as able-bodied holds a first-grade certificate: labour capacity drops by one
    people = _people(county, SEED)
    base = prepared.frame.set_index("household_id")
    able = people[people["labour"].isin(["普通劳动力", "技能劳动力"]) & (people["health"] == "健康")]
    able = able[able["household_id"].map(base["able_bodied"]).fillna(0) > 0]
    able = able[able["household_id"].map(base["members"]) == able["household_id"].map(base["able_bodied"])]
    person = able.iloc[0]
    extra = pd.DataFrame([{"残疾人证号": person["id_number"] + "11", "证件号码": person["id_number"],
                           "残疾类别": "肢体", "残疾等级": "一级", "发证日期": "2019-04-01"}])
    path = tmp_path / "disability.csv"
    pd.concat([raw, extra], ignore_index=True).to_csv(path, index=False)
    result = apply_registers(prepared.frame, prepared.ids, [read_register(path, REGISTERS["disability_certificates"])],
                             BOOK, 2020)
    after = result.frame.set_index("household_id")["able_bodied"]
    hid = person["household_id"]
    assert after[hid] == base.loc[hid, "able_bodied"] - 1
    assert (after <= base["able_bodied"]).all()
    row = result.contradictions[result.contradictions["household_id"] == hid].iloc[0]
    assert row["file_value"] == base.loc[hid, "able_bodied"] and row["register_value"] == after[hid]
    assert mask_identities(person["id_number"]) in row["evidence"]


def test_social_assistance_is_evidence_of_the_households_guarantees(county, files, prepared):
    result = run(prepared, [files[1]["social_assistance"]])
    raw = pd.read_csv(files[1]["social_assistance"], dtype=str)
    ev = result.evidence
    assert set(ev["column"]) <= {"minimum_living_guarantee", "destitute_support"}
    assert len(ev) == len(raw) and ev["text"].str.contains("MON-4.3 低保特困名册").all()
    assert set(ev["household_id"]) == household_of(county, raw["证件号码"])


def test_the_export_plus_its_registers_excludes_car_company_and_salary_households_citing_the_register(
        county, files, prepared):
    result = run(prepared, [files[1][k] for k in KINDS], hardship_known=True)
    decided = score(result.frame, year=2020, rules=BOOK, file=str(files[0])).decisions
    decided["evidence"] = decided["household_id"].map(result.evidence_text()).fillna("")
    h = county.households.set_index("household_id")
    flagged = (h[["ex_vehicle", "ex_business", "ex_public_employee"]] == "是").any(axis=1) | (
        (h["ex_urban_property"] == "是") & (h["ex_urban_property_rebuild"] != "是"))
    excluded = decided[decided["identification"] == "excluded"]
    assert len(excluded) > 0
    assert flagged.reindex(excluded["household_id"]).all()
    assert excluded["evidence"].str.contains(r"ID-2\.3\.[1345] ").all()
    # every household the criteria select and a register excludes is excluded (none reviewed for the flag)
    criteria = decided["reasons"].str.contains("id_criteria_met: 是")
    assert (decided.loc[criteria & decided["household_id"].map(flagged), "identification"] == "excluded").all()


def test_a_register_contradicting_the_household_file_is_listed_with_both_values(files, prepared):
    frame = prepared.frame.assign(ex_vehicle=False)  # the file says 无车 for everyone
    read = read_register(files[1]["vehicles"], REGISTERS["vehicles"])
    result = apply_registers(frame, prepared.ids, [read], BOOK, 2020)
    owners = set(result.evidence["household_id"])
    table = result.contradictions
    assert set(table["household_id"]) == owners
    assert (table["file_value"] == "否").all() and (table["register_value"] == "是").all()
    assert table["evidence"].str.contains("ID-2.3.4 车辆登记：").all()
    assert result.frame.set_index("household_id").loc[sorted(owners), "ex_vehicle"].all()


def test_score_cli_takes_registers_and_writes_evidence_and_unmatched(files, tmp_path):
    export, regs = files
    out = tmp_path / "d.csv"
    args = ["score", str(export), "--year", "2020", "-o", str(out)]
    for kind in ("vehicles", "medical_settlements"):
        args += ["--register", str(regs[kind])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    decisions = pd.read_csv(out, dtype=str)  # what a clerk reads: Chinese headers
    assert decisions["部门数据依据"].fillna("").str.contains("ID-2.3.4 车辆登记：").any()
    evidence = pd.read_csv(tmp_path / "d.evidence.csv", dtype=str)
    assert {"户编号", "依据", "成员证件号码（已隐去）"} <= set(evidence.columns)
    assert not evidence["依据"].str.contains(r"\d{18}").any()
    assert (tmp_path / "d.unmatched.csv").exists()
    assert "matching no household" in result.output


def test_a_file_that_is_no_register_is_a_clear_error(files, tmp_path):
    result = runner.invoke(app, ["score", str(files[0]), "--year", "2020", "-o", str(tmp_path / "d.csv"),
                                 "--register", str(files[0])])
    assert result.exit_code != 0 and "部门登记数据" in result.output and "Traceback" not in result.output


def test_a_register_file_naming_an_unknown_field_is_refused(tmp_path):
    text = (Path(BOOK.root) / "registers" / "vehicles.yaml").read_text(encoding="utf-8")
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("any: \"kind in", "any: \"kindd in"), encoding="utf-8")
    with pytest.raises(RuleError, match="did you mean 'kind'"):
        load_register(path)


def test_the_generator_is_consistent_with_the_county(county):
    made = registers(county, seed=SEED)
    ids = set(_people(county, SEED)["id_number"])
    assert set(made["disability_certificates"]["证件号码"]) <= ids
    assert set(made["state_payroll"]["身份证号码"]) <= ids


def test_medical_settlements_as_monitoring_events_raise_alerts_citing_mon2_and_mon51(county, files, tmp_path):
    from sqlmodel import Session, select

    from povertyrules.store.database import connect
    from povertyrules.store.models import Alert

    export, _ = files
    db = str(tmp_path / "audit.db")
    # the county scored for 2019; its 医保 settlements of 2020 arrive as events (2020: the national line holds)
    scored = runner.invoke(app, ["score", str(export), "--year", "2019", "-o", str(tmp_path / "d.csv"), "--store",
                                 "--db", db])
    assert scored.exit_code == 0, scored.output
    later = registers(county, seed=SEED, year=2020)["medical_settlements"]
    path = tmp_path / "medical_2020.csv"
    later.to_csv(path, index=False)
    result = runner.invoke(app, ["monitor", "--register", str(path), "--people", str(export), "--as-of",
                                 "2020-12-31", "--db", db])
    assert result.exit_code == 0, result.output
    people = _people(county, SEED).set_index("id_number")["household_id"]
    spent = later.assign(h=later["参保人证件号码"].map(people)).dropna(subset=["h"]).groupby("h")["合规自付费用"].sum()
    income = pd.to_numeric(county.households.set_index("household_id")["net_income"], errors="coerce")
    over = set(spent.index[spent > income.reindex(spent.index)])
    with Session(connect(db)) as session:
        alerts = session.exec(select(Alert).where(Alert.trigger == "rigid_expenditure_high")).all()
    assert over and {a.household_id for a in alerts} == over
    assert all("MON-2" in a.clauses and "MON-5.1" in a.clauses for a in alerts)
    assert all("医保结算" in a.message and "********" in a.message for a in alerts)
    assert "matching no household 5" in result.output


def test_a_large_utf8_csv_whose_first_block_ends_inside_a_character_is_read(tmp_path):
    from povertyrules.io.sheets import read_grid

    path = tmp_path / "big.csv"
    line = "证件号码,车辆类型\n" + "".join(f"5223011990010{i % 10}0000,小型轿车\n" for i in range(20000))
    data = line.encode("utf-8")
    for shift in range(0, 32, 1):  # the 256 KiB head ends inside a three-byte character for some shifts
        path.write_bytes(b"a" * shift + data)
        assert read_grid(path, limit=40).cells[1] is not None


def test_the_bulk_id_mask_is_the_maskers_own(county):
    from povertyrules.privacy import mask_id_numbers

    ids = pd.Series([*_people(county, SEED)["id_number"].head(50), "110101900101123"])
    assert mask_id_numbers(ids).tolist() == [mask_identities(i) for i in ids]


def test_explain_and_the_household_page_show_the_register_evidence(county, files, tmp_path):
    from fastapi.testclient import TestClient

    from povertyrules.web.app import create_app

    export, regs = files
    db = str(tmp_path / "audit.db")
    four = export.with_name("four.xlsx")
    scored = runner.invoke(app, ["score", str(export), "--join", str(four), "--year", "2020", "--lang", "en", "-o",
                                 str(tmp_path / "d.csv"), "--store", "--db", db, "--register", str(regs["vehicles"])])
    assert scored.exit_code == 0, scored.output
    decisions = pd.read_csv(tmp_path / "d.csv", dtype=str)
    owner = decisions[decisions["evidence"].fillna("").str.contains("车辆登记")].iloc[0]["household_id"]
    explained = runner.invoke(app, ["explain", owner, "--db", db])
    assert explained.exit_code == 0, explained.output
    shown = " ".join(explained.output.split())  # (as printed, wrapped at the terminal's width)
    assert "部门数据依据 (ID-2.3.4)" in shown and "ID-2.3.4 车辆登记：" in shown
    data = runner.invoke(app, ["explain", owner, "--db", db, "--json"])
    import json

    payload = json.loads(data.output)
    assert payload["evidence"][0]["column"] == "ex_vehicle" and "********" in payload["evidence"][0]["member"]
    client = TestClient(create_app(db))
    page = client.get(f"/household/{owner}")
    assert page.status_code == 200 and "ID-2.3.4 车辆登记：" in page.text
    # the evidence is headed by the clauses it cites, and shown (like any contradiction) by Chinese names only
    from .test_web import INTERNAL, _visible_text

    assert "部门数据依据 (ID-2.3.4)" in page.text and "(MON-5.1)" not in page.text
    assert not INTERNAL.findall(_visible_text(page.text))
    assert not INTERNAL.findall(explained.output.replace(str(tmp_path), ""))
    assert client.get(f"/api/households/{owner}").json()["evidence"][0]["register_name"] == "vehicles"


def test_a_household_file_without_member_ids_cannot_be_matched_and_says_so(files, tmp_path):
    sample = Path(BOOK.root).parent / "datasets" / "sample_county.xlsx"
    result = runner.invoke(app, ["score", str(sample), "-o", str(tmp_path / "d.csv"), "--register",
                                 str(files[1]["vehicles"])])
    assert result.exit_code != 0 and "证件号码" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.csv").exists()


def test_a_contradiction_on_the_household_page_and_in_explain_names_the_column_in_chinese(tmp_path):
    """A register that says otherwise than the file is shown by the column's Chinese header, never its name."""
    from fastapi.testclient import TestClient

    from povertyrules.store.database import connect
    from povertyrules.store.runs import record_run
    from povertyrules.web.app import create_app

    from .conftest import households
    from .test_web import INTERNAL, _visible_text

    result = score(households({}, {}), keep_records=True)
    hid = str(result.decisions["household_id"].iloc[0])
    result.contradictions = pd.DataFrame([{"household_id": hid, "column": "ex_vehicle", "file_value": "否",
                                           "register_value": "是", "evidence": "ID-2.3.4 车辆登记：轿车",
                                           "register_file": "vehicles.csv"}])
    db = str(tmp_path / "a.db")
    record_run(connect(db), result, "x.csv")
    from povertyrules.model.columns import HOUSEHOLD_COLUMNS

    header = {c.name: c.zh for c in HOUSEHOLD_COLUMNS}["ex_vehicle"]  # the contract's Chinese header
    page = _visible_text(TestClient(create_app(db)).get(f"/household/{hid}").text)
    assert f"与户表不一致: {header} 否 / 是" in page and not INTERNAL.findall(page)
    explained = runner.invoke(app, ["explain", hid, "--db", db])
    shown = " ".join(explained.output.split())
    assert explained.exit_code == 0 and f"与户表不一致: {header} 户表 否 / 部门数据 是" in shown
    assert "ex_vehicle" not in shown
