"""Web hardening: 4xx for every malformed request, escaped search, no identity in errors, security headers,
nothing loaded from elsewhere."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from povertyrules import score
from povertyrules.store.database import connect
from povertyrules.store.runs import record_run
from povertyrules.web.app import create_app

from .conftest import households

ID = "110101199003071234"


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    db = str(tmp_path_factory.mktemp("webh") / "audit.db")
    frame = households({"household_id": ID, "village": "上寨村"}, {"village": "下寨村"}, {"village": "50%_村"})
    record_run(connect(db), score(frame, keep_records=True), "h.csv")
    return TestClient(create_app(db), raise_server_exceptions=False)


@pytest.mark.parametrize("url", [
    "/run/9223372036854775808", "/run/99999999999999999999", "/api/runs/9223372036854775807",
    "/decision/9223372036854775808", "/run/9223372036854775808/decisions.xlsx",
    "/?q=x&page=9223372036854775808", "/api/households?q=x&page=9223372036854775808",
    "/household/h1?run=9223372036854775808", "/api/households/h1?run=-1", "/run/0", "/run/abc",
    "/?q=" + "x" * 60_000, "/api/households?q=" + "z" * 60_000, "/household/" + "1" * 60_000,
    "/api/households?q=" + "村" * 101, "/household/" + "1" * 65,
])
def test_malformed_requests_get_4xx_never_500(client, url):
    response = client.get(url)
    assert 400 <= response.status_code < 500, (url[:80], response.status_code, response.text[:200])


def test_percent_and_underscore_are_literal_in_search(client):
    assert client.get("/api/households", params={"q": "%"}).json()["total"] == 1  # only 50%_村
    assert client.get("/api/households", params={"q": "_"}).json()["total"] == 1
    assert client.get("/api/households", params={"q": "寨"}).json()["total"] == 2
    assert "h3" in client.get("/", params={"q": "%_"}).text


def test_errors_never_echo_an_identity(client):
    other = "522301199001011236"
    for url in (f"/household/{other}", f"/api/households/{other}", f"/api/households/{other}?run=7"):
        response = client.get(url)
        assert response.status_code == 404
        assert other not in response.text and other[:6] not in response.text
    too_long = "4" * 65
    response = client.get(f"/api/households/{too_long}")
    assert response.status_code == 422 and too_long not in response.text


def test_security_headers_on_every_answer(client):
    for url in ("/", "/household/h2", "/api/runs", "/openapi.json", "/nowhere", "/run/1/decisions.xlsx"):
        headers = client.get(url).headers
        assert "default-src 'none'" in headers["content-security-policy"], url
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_no_page_loads_anything_from_elsewhere(client):
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200
    for url in ("/", "/?q=寨", "/household/h2", "/run/1"):
        page = client.get(url).text
        assert not re.search(r"<script|(src|href)=\"(https?:)?//", page), url


def test_the_inline_style_is_allowed_by_its_hash(client):
    import base64
    import hashlib

    page = client.get("/").text
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in client.get("/").headers["content-security-policy"]
