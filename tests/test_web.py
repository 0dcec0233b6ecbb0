"""The inspector's read-only web pages and JSON API; and a real browser reading why a household was excluded."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from povertyrules import score
from povertyrules.store.database import connect
from povertyrules.store.runs import record_run
from povertyrules.web.app import create_app, mask

from . import system
from .conftest import ROOT, SAMPLE, households

ARTIFACTS = Path(os.environ.get("POVERTYRULES_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A store holding the bundled sample, plus two households whose ids and notes carry identity numbers."""
    from povertyrules.io.tables import member_sheet, read_table

    db = str(tmp_path_factory.mktemp("web") / "audit.db")
    result = score(read_table(SAMPLE), members=member_sheet(SAMPLE), keep_records=True, file=str(SAMPLE))
    record_run(connect(db), result, SAMPLE)
    extra = households({"household_id": "110101199003071234", "village": "电话13812345678村"})
    record_run(connect(db), score(extra, keep_records=True), "extra.csv")
    return db


@pytest.fixture(scope="module")
def excluded(store) -> str:
    from povertyrules.store.runs import decisions_frame

    frame = decisions_frame(connect(store), 1)
    return frame.loc[frame["identification"] == "excluded", "household_id"].iloc[0]


def test_search_by_id_and_by_village_with_paging(store, excluded):
    client = TestClient(create_app(store))
    found = client.get("/api/households", params={"q": excluded}).json()
    assert found["total"] == 1 and found["households"][0]["identification"] == "excluded"
    assert client.get("/api/households", params={"q": "ghost"}).json()["total"] == 0


def test_paging_through_a_large_village(store):
    client = TestClient(create_app(store))
    first = client.get("/api/households", params={"q": "村"}).json()
    assert first["total"] > 50 and len(first["households"]) == 50
    last_page = -(-first["total"] // 50)
    last = client.get("/api/households", params={"q": "村", "page": last_page}).json()
    assert len(last["households"]) == first["total"] - 50 * (last_page - 1)
    ids = {h["household_id"] for p in range(1, last_page + 1)
           for h in client.get("/api/households", params={"q": "村", "page": p}).json()["households"]}
    assert len(ids) == first["total"]
    page = client.get("/", params={"q": "村", "page": 2}).text
    assert "page=3" in page and "page=1" in page
    assert [r["id"] for r in client.get("/api/runs").json()] == [1, 2]


def test_the_household_page_shows_rules_clause_text_changes_and_history(store, excluded):
    client = TestClient(create_app(store))
    page = client.get(f"/household/{excluded}").text
    assert 'data-code="excluded"' in page and "六不评" in page
    assert "对有以上六种情形的，一般不得评为贫困户" in page  # ID-2.4 quoted word for word
    assert "改变结果的条件" in page and "特殊困难" in page
    reasons = _visible_text(page[page.index('id="reasons"'):page.index('id="clauses"')])
    first = reasons.split("精准识别结果：六不评排除", 1)[1]
    assert first.index("【决定本项结果】") < first.index("✓") + 40 < first.index("✗")  # the decisive rule first
    english = client.get(f"/household/{excluded}", params={"lang": "en"}).text
    assert "What would change the outcome" in english and "decides this outcome" in english
    shown = _visible_text(english[english.index('id="reasons"'):english.index('id="clauses"')])
    words = set(re.split(r"[\s。：，（）]+", shown))
    assert "holds" in shown and not {"符合", "不符合", "未填", "元", "决定本项结果"} & words
    data = client.get(f"/api/households/{excluded}").json()
    assert data["decision"]["identification"] == "excluded" and data["history"][0]["run_id"] == 1
    assert any(r["clause"].startswith("ID-2.3.") for r in data["reasons"])
    assert client.get("/household/nobody").status_code == 404


def test_the_run_page_counts_statuses_and_offers_xlsx_downloads(store, tmp_path):
    client = TestClient(create_app(store))
    page = client.get("/run/1").text
    assert "/run/1/decisions.xlsx" in page and "/run/1/watchlist.xlsx" in page
    summary = client.get("/api/runs/1").json()
    assert sum(summary["counts"]["identification"].values()) == summary["decided"]
    assert summary["by_township"]
    for decision in ("identification", "exit", "monitoring"):  # a table each, readable without scrolling sideways
        table = page[page.index(f'id="by-township-{decision}"'):]
        table = table[:table.index("</table>")]
        places = re.findall(r"<tr(?: class=\"total\")?><td>([^<]*)</td>", table)
        assert places[-2:] == ["未填", "合计"] and places[:-2] == sorted(places[:-2]), places  # 未填 last
    for name in ("decisions", "watchlist"):
        response = client.get(f"/run/1/{name}.xlsx")
        assert response.status_code == 200
        path = tmp_path / f"{name}.xlsx"
        path.write_bytes(response.content)
        assert len(pd.read_excel(path, engine="calamine")) > 0


def test_the_api_is_described_by_openapi(store):
    paths = TestClient(create_app(store)).get("/openapi.json").json()["paths"]
    assert {"/api/households", "/api/households/{household_id}", "/api/runs", "/api/runs/{run_id}"} <= set(paths)


def test_no_route_writes(store):
    app = create_app(store)
    methods = {m for route in app.routes for m in getattr(route, "methods", set())}
    assert methods <= {"GET", "HEAD"}
    assert TestClient(app).post("/api/households", params={"q": "x"}).status_code == 405


def test_identity_and_phone_numbers_are_masked_unless_the_operator_allows_them(store):
    assert mask("110101199003071234 13812345678") == "110101********1234 138****5678"
    masked = TestClient(create_app(store)).get("/api/households", params={"q": "110101199003071234"}).json()
    row = masked["households"][0]
    # at rest the store keeps the masked form plus a keyed hash, so the search by the number finds it
    assert row["household_id"].startswith("110101********1234#") and row["village"] == "电话138****5678村"
    shown = TestClient(create_app(store, show_identities=True)).get(
        "/api/households", params={"q": "110101199003071234"}).json()
    assert shown["households"][0]["household_id"] == row["household_id"]  # the number itself is not kept
    client = TestClient(create_app(store))
    page = client.get("/", params={"q": "110101199003071234"}).text
    assert "110101199003071234" not in page and "110101********1234" in page
    link = re.search(r'href="(/decision/\d+)\?', page).group(1)  # links carry no identity
    opened = client.get(link).text
    assert "110101********1234" in opened and "110101199003071234" not in opened
    export = client.get("/run/2/decisions.xlsx?lang=en").content
    assert b"110101199003071234" not in export and "110101********1234" in str(
        pd.read_excel(__import__("io").BytesIO(export), engine="calamine")["household_id"].tolist())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


INTERNAL = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b(?:poor|not_poor|excluded|eligible|not_eligible|edge|none|review)\b")


def _visible_text(html: str) -> str:
    """What a reader sees: the page without its tags, style and the attributes links carry."""
    html = re.sub(r"<style.*?</style>", "", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html)
    return re.sub(r"[\w./-]+\.(?:xlsx|xls|csv|ods|parquet)\b", " ", text)  # file names are the clerk's own


def test_the_run_page_counts_every_decision_per_township_with_blank_as_unfilled(store):
    client = TestClient(create_app(store))
    summary = client.get("/api/runs/1", params={"lang": "zh"}).json()
    table = {row["township"]: row for row in summary["by_township"]}
    assert "未填" in table  # the sample has households with no township
    decided = {c["decision"] for c in summary["columns"]}
    assert decided == {"identification", "exit", "monitoring"}
    total = table[None]
    assert total["households"] == summary["decided"]
    for decision in decided:  # each decision's statuses add up to the households, per township and in total
        columns = [i for i, c in enumerate(summary["columns"]) if c["decision"] == decision]
        for row in summary["by_township"]:
            assert sum(row["counts"][i] for i in columns) == row["households"]
    page = client.get("/run/1").text
    assert "未填" in page and "六不评排除" in page and "/run/1/review.xlsx" in page


def test_the_review_page_lists_flagged_households_linking_to_their_explanation(store):
    client = TestClient(create_app(store))
    data = client.get("/api/runs/1/review", params={"lang": "zh"}).json()
    flagged = {row["核查项"]: row["疑似户数"] for row in data["summary"]}
    page = client.get("/run/1/review").text
    assert "疑似错评" in page and "疑似错退" in page and "分村" in page
    links = re.findall(r'href="/decision/(\d+)\?lang=zh"', page)
    assert len(links) == min(50, sum(v or 0 for v in flagged.values()))
    opened = client.get(f"/decision/{links[0]}").text
    assert "判定依据" in opened
    only = client.get("/run/1/review", params={"check": "wrongly_exited"}).text
    assert f"共 {flagged['疑似错退']:,} 户" in only
    export = client.get("/run/1/review.xlsx")
    sheets = pd.read_excel(__import__("io").BytesIO(export.content), sheet_name=None, engine="calamine")
    assert len(sheets["疑似问题户"]) == sum(v or 0 for v in flagged.values())
    assert sheets["疑似问题户"]["查看判定依据"].str.match(r"http://testserver/decision/\d+$").all()


def test_the_search_page_is_useful_before_a_query(store):
    page = TestClient(create_app(store)).get("/").text
    assert 'id="runs"' in page and "/run/1?lang=zh" in page and "/run/2?lang=zh" in page
    assert 'id="review-summary"' in page and "疑似错评" in page


def test_pages_are_numbered_with_first_last_and_neighbours(store):
    client = TestClient(create_app(store))
    total = client.get("/api/households", params={"q": "村"}).json()["total"]
    pages = -(-total // 50)
    page = client.get("/", params={"q": "村", "page": 5}).text
    numbers = {int(n) for n in re.findall(r'page=(\d+)&(?:amp;)?lang=zh">\d+<', page)}
    assert {1, 2, 3, 4, 6, 7, 8, pages} <= numbers and "<b>5</b>" in page
    assert 'rel="prev"' in page and 'rel="next"' in page


def test_the_chinese_pages_carry_no_internal_names_or_status_codes(store):
    client = TestClient(create_app(store))
    from povertyrules.store.runs import decisions_frame

    frame = decisions_frame(connect(store), 1)
    some = [frame.loc[frame[d] == v, "household_id"].iloc[0] for d, v in (
        ("identification", "poor"), ("identification", "excluded"), ("identification", "review"),
        ("monitoring", "edge"), ("monitoring", "unstable_exited"), ("exit", "eligible")) if (frame[d] == v).any()]
    assert len(some) >= 5
    for url in ("/", "/?q=村", "/run/1", "/run/1/review", "/run/1/review?check=missed",
                *(f"/household/{h}" for h in some)):
        text = _visible_text(client.get(url).text)
        found = INTERNAL.findall(text)
        assert not found, (url, found[:5])


def test_the_household_page_shows_the_procedure_steps_done_and_the_next(store, tmp_path):
    import datetime as dt

    from povertyrules.lang.rulebook import load_rulebook
    from povertyrules.store.procedures import record_step
    from povertyrules.store.runs import decisions_frame

    frame = decisions_frame(connect(store), 1)
    poor = frame.loc[frame["identification"] == "poor", "household_id"].iloc[0]
    record_step(connect(store), load_rulebook(), poor, "identification", "application", dt.date(2020, 3, 2), "王五")
    page = TestClient(create_app(store)).get(f"/household/{poor}", params={"run": 1}).text
    procedures = page[page.index('id="procedures"'):]
    assert "农户申请" in procedures and "2020-03-02" in procedures and "王五" in procedures
    assert "下一步：<b>村级初审并入户调查</b>" in procedures and "程序未完成" in procedures


def test_an_inspector_reads_the_clause_text_in_a_real_browser(store, excluded):
    chromium = system.chromium("tests/test_web.py")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "povertyrules.cli.main", "serve", "--db", store,
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout.readline().strip().endswith(f"http://127.0.0.1:{port}/")  # serve says where it is
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/")
            assert "疑似错评" in page.locator("#review-summary + ul").inner_text()
            page.screenshot(path=str(ARTIFACTS / "search-start.png"), full_page=True)
            page.fill("input[name=q]", "村")
            page.click("button[type=submit]")
            page.wait_for_selector("nav.pages")
            page.screenshot(path=str(ARTIFACTS / "search-results.png"), full_page=True)
            page.goto(f"{base}/run/1")
            assert "未填" in page.locator("#by-township").inner_text()
            page.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)
            page.goto(f"{base}/run/1/review")
            page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
            page.locator("#flagged a").first.click()
            page.wait_for_selector("#identification")
            page.screenshot(path=str(ARTIFACTS / "household-from-review.png"), full_page=True)
            page.goto(f"{base}/household/{excluded}")
            assert page.locator("#identification").inner_text() == "六不评排除"
            assert page.locator("#identification").get_attribute("data-code") == "excluded"
            clauses = page.locator("#clauses").inner_text()
            assert "对有以上六种情形的，一般不得评为贫困户" in clauses
            page.screenshot(path=str(ARTIFACTS / "household-excluded.png"), full_page=True)
            page.click("#lang-switch")
            assert "What would change the outcome" in page.content()
            page.screenshot(path=str(ARTIFACTS / "household-excluded-en.png"), full_page=True)
            browser.close()
        for name in ("search-start", "search-results", "run", "review", "household-from-review",
                     "household-excluded", "household-excluded-en"):
            assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_concurrent_readers_explanations_are_worked_out_together_and_match_one_by_one(store):
    import threading

    from sqlmodel import Session, select

    from povertyrules.store.explain import explain_stored
    from povertyrules.store.models import Decision
    from povertyrules.store.runs import get_run, reasons_of
    from povertyrules.web.batching import Explainer

    engine = connect(store)
    with Session(engine) as session:
        decisions = list(session.execute(select(Decision).where(Decision.run_id == 1).limit(20)).scalars())
    batches: list[int] = []

    class Counting(Explainer):
        def _explain(self, ids):
            if not batches:  # hold the first batch until every other reader has asked
                deadline = time.time() + 30
                while len(self.pending) < len(decisions) and time.time() < deadline:
                    time.sleep(0.01)
            batches.append(len(ids))
            super()._explain(ids)

    explainer = Counting(engine)
    answers: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda d=d: answers.__setitem__(d.id, explainer.explained(d.id)))
               for d in decisions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(batches) == len(decisions) and len(batches) <= 2  # the readers who waited: one batch
    run = get_run(engine, 1)
    for d in decisions:
        assert answers[d.id] == explain_stored(run, d, reasons_of(engine, d.household_id, 1)).to_dict()
    assert explainer.explained(decisions[0].id) is answers[decisions[0].id]  # kept: a stored decision never changes
    try:
        explainer.explained(10**9)
    except LookupError:
        pass
    else:
        raise AssertionError("an unknown decision must fail")


def test_serve_with_several_worker_processes_answers_and_stops_cleanly(store):
    import urllib.request

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "povertyrules.cli.main", "serve", "--db", store, "--port",
                               str(port), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        assert server.stdout.readline().strip().endswith(f"http://127.0.0.1:{port}/")
        deadline, page = time.time() + 60, None
        while time.time() < deadline and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/run/1", timeout=10) as response:
                    page = response.read().decode("utf-8")
            except OSError:
                time.sleep(0.3)
        assert page and "分乡镇户数" in page
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert server.returncode is not None


def test_a_page_that_is_not_there_is_a_page_in_the_readers_language_and_json_for_programs(store):
    client = TestClient(create_app(store))
    browser = {"accept": "text/html,application/xhtml+xml"}
    for url, zh, en in (("/run/99", "未找到该运行", "run not found"), ("/nowhere", "未找到该页面", "Page not found")):
        page = client.get(url, headers=browser)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert zh in page.text and en not in page.text
        assert en in client.get(url, params={"lang": "en"}, headers=browser).text
    assert client.get("/api/runs/99").json() == {"detail": "未找到该运行 / run not found"}
    assert client.get("/run/99").headers["content-type"] == "application/json"  # no browser: JSON as before


def test_switching_language_keeps_the_query_and_a_page_past_the_end_shows_the_last(store):
    from html import unescape

    client = TestClient(create_app(store))
    page = client.get("/", params={"q": "村", "page": 9999}).text
    switch = unescape(re.search(r'id="lang-switch" href="([^"]+)"', page).group(1))
    assert switch.startswith("/?") and "q=%E6%9D%91" in switch and switch.endswith("lang=en")
    pages = re.search(r"(\d+)/(\d+)", page[page.index("</form>"):])
    assert pages and pages.group(1) == pages.group(2)  # the last page, not an empty one
    number = "110105194912310021"
    searched = client.get("/", params={"q": number}).text
    assert number not in searched  # the switch link leaves a searched identity number out
