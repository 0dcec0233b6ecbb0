"""The analysts' notebook runs end to end and its HTML shows every chart; the what-if API behaves."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import povertyrules.analysis as pa
from povertyrules.cli.notebook import DEFAULT, execute
from povertyrules.io.tables import member_sheet, read_table

from . import system
from .conftest import SAMPLE, households


def test_the_notebook_runs_and_its_html_shows_every_chart_with_chinese_labels(tmp_path):
    system.cjk_font("tests/test_notebook.py")
    html = tmp_path / "at_risk_cohorts.html"
    nb = execute(DEFAULT, html=html)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Glyph" not in stderr and "missing from" not in stderr  # no boxes for Chinese characters
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4
    page = html.read_text(encoding="utf-8")
    assert len(re.findall(r"data:image/png;base64", page)) >= 4
    assert "监测规模随监测倍数变化" in page and "font: " in page


@pytest.fixture(scope="module")
def sample():
    return read_table(SAMPLE), member_sheet(SAMPLE)


def test_compare_counts_households_moving_between_statuses_by_township(sample):
    frame, members = sample
    base = pa.score(frame, members=members).decisions
    wider = pa.score(frame, members=members, overrides={"monitoring_multiplier": 2.0}).decisions
    moves = pa.compare(base, wider, by="township")
    monitoring = moves[moves["decision"] == "monitoring"]
    assert monitoring["households"].sum() == len(base)
    into_edge = monitoring[(monitoring["before"] == "none") & (monitoring["after"] == "edge")]["households"].sum()
    assert into_edge > 0
    assert moves[(moves["decision"] == "identification")]["moved"].sum() == 0  # the multiplier is monitoring's


def test_a_decisions_file_and_the_store_load_as_the_same_frame(tmp_path, sample):
    frame, members = sample
    result = pa.score(frame, members=members, keep_records=True)
    path = tmp_path / "d.parquet"
    result.decisions.to_parquet(path)
    from povertyrules.store.database import connect
    from povertyrules.store.runs import record_run

    db = str(tmp_path / "a.db")
    record_run(connect(db), result, SAMPLE)
    from_file, from_store = pa.load_decisions(path), pa.load_decisions(db)
    assert list(from_file["household_id"]) == list(from_store["household_id"])
    assert (from_file["monitoring"].to_numpy() == from_store["monitoring"].to_numpy()).all()


@settings(max_examples=15, deadline=None)
@given(st.floats(1.0, 2.5), st.floats(0.0, 0.5))
def test_raising_the_multiplier_never_shrinks_the_watchlist(low, step):
    frame = households(*({"net_income": str(n), "registered_status": s}
                         for n in range(8000, 30001, 1100) for s in ("exited", "none")))

    def watched(multiplier: float) -> set:
        d = pa.score(frame, overrides={"monitoring_multiplier": multiplier}).decisions
        return set(d.loc[d["monitoring"].isin(["edge", "unstable_exited"]), "household_id"])

    assert watched(low) <= watched(low + step)


def test_criteria_gives_every_criterion_per_household():
    table = pa.criteria(households({"net_income": "6000", "four_look_score": "40", "ex_vehicle": "是"},
                                   {"ex_business": ""}))
    assert table.loc[0, "ex_2_3_4_vehicle"] == True and table.loc[0, "identification"] == "excluded"  # noqa: E712
    assert pd.isna(table.loc[1, "ex_2_3_5_business"])


def test_a_cjk_font_installed_after_matplotlibs_cache_was_built_is_found(monkeypatch):
    from matplotlib import font_manager

    system.cjk_font("tests/test_notebook.py")
    stale = [f for f in font_manager.fontManager.ttflist if f.name not in pa.CJK_FONTS]  # the cache before
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    assert pa.find_cjk_font() in pa.CJK_FONTS


def test_a_chinese_decisions_workbook_loads_with_the_same_names_and_codes_as_an_english_file(tmp_path):
    from typer.testing import CliRunner

    import povertyrules.analysis as pa
    from povertyrules.cli.main import app

    from .conftest import SAMPLE

    for name, lang in (("zh.xlsx", "zh"), ("en.csv", "en")):
        scored = CliRunner().invoke(app, ["score", str(SAMPLE), "-o", str(tmp_path / name), "--lang", lang])
        assert scored.exit_code == 0
    zh, en = pa.load_decisions(tmp_path / "zh.xlsx"), pa.load_decisions(tmp_path / "en.csv")
    for column in ("household_id", "identification", "exit", "monitoring", "registered_status"):
        assert zh[column].fillna("").astype(str).tolist() == en[column].fillna("").astype(str).tolist(), column
    assert set(zh["identification"]) <= {"poor", "not_poor", "excluded", "review"}
