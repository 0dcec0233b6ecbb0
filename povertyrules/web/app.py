"""The inspector's read-only web pages and JSON API over the audit store (FastAPI, server-rendered Jinja2).

Read-only by construction: every route is a GET and the store is only queried. Identity-card and phone
numbers are masked in every page, JSON answer and export unless the server starts with `show_identities`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path as FilePath
from typing import Annotated, Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, or_, select
from sqlmodel import Session

from povertyrules.io.tables import write_table
from povertyrules.privacy import mask, mask_frame
from povertyrules.store.database import connect, stored_form
from povertyrules.store.explain import explain_stored
from povertyrules.store.models import Decision, Run
from povertyrules.store.reports import watchlist
from povertyrules.store.runs import (
    NotFound,
    contradictions_of,
    decision_chunks,
    decision_of,
    decisions_frame,
    evidence_of,
    get_run,
    history_of,
    reasons_of,
)

PAGE_SIZE = 50
#: what a request may carry: larger numbers, longer ids or queries are answered 422, never 500
MAX_NUMBER = 2**31 - 1
MAX_PAGE = 100_000
MAX_QUERY = 100
MAX_ID = 64
MAX_URL = 4_096
RunId = Annotated[int, Path(ge=1, le=MAX_NUMBER)]
HouseholdId = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
OptionalRun = Annotated[int | None, Query(ge=1, le=MAX_NUMBER)]
TEXT = {
    "zh": {"title": "精准扶贫决策查询", "search": "查询", "placeholder": "户编号或村名", "household": "户",
           "village": "村", "identification": "识别", "exit": "退出", "monitoring": "监测", "reasons": "判定依据",
           "clauses": "条款原文", "changes": "改变结果的条件", "history": "历次结果", "run": "运行",
           "download": "下载", "decisions": "决策表", "watchlist": "监测名单", "not_found": "未找到",
           "page": "页", "per_capita": "人均纯收入", "line": "标准线", "counts": "各状态户数", "switch": "English"},
    "en": {"title": "Poverty decisions", "search": "Search", "placeholder": "household id or village",
           "household": "Household", "village": "Village", "identification": "Identification", "exit": "Exit",
           "monitoring": "Monitoring", "reasons": "Reasons", "clauses": "Clause texts",
           "changes": "What would change the outcome", "history": "History", "run": "Run", "download": "Download",
           "decisions": "decisions", "watchlist": "watchlist", "not_found": "Not found", "page": "page",
           "per_capita": "Per-capita income", "line": "Line", "counts": "Households per status", "switch": "中文"},
}


TEMPLATES = FilePath(__file__).parent / "templates"


def _style_hash() -> str:
    """The CSP hash of the pages' one inline style block (base.html), so no 'unsafe-inline' is needed."""
    style = re.search(r"<style>(.*?)</style>", (TEMPLATES / "base.html").read_text(encoding="utf-8"), re.S)
    digest = hashlib.sha256(style.group(1).encode()).digest() if style else b""
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def security_headers() -> dict[str, str]:
    """Headers on every answer: nothing loads from elsewhere, no framing, no sniffing, no referrer."""
    return {
        "Content-Security-Policy": f"default-src 'none'; style-src {_style_hash()}; img-src 'self'; "
                                   "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server on this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _household_of(engine, path: str) -> str | None:
    """The household a request reads, for the access log."""
    from urllib.parse import unquote

    match = re.match(r"^/(?:api/households|household)/([^/]+)$", path)
    if match:
        return unquote(match.group(1))[:MAX_ID]
    match = re.match(r"^/decision/(\d{1,9})$", path)
    if match:
        with Session(engine) as session:
            decision = session.get(Decision, int(match.group(1)))
        return decision.household_id if decision else None
    return None


def _basic_user(engine, header: str | None) -> str | None:
    """The user an ``Authorization: Basic`` header names, if the password is right."""
    from povertyrules.store.access import authenticate

    if not header or not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return name if name and authenticate(engine, name, password) else None


def create_app(db: str | None = None, show_identities: bool = False, require_login: bool = False) -> FastAPI:
    """The inspector's app. With `require_login` (any address beyond loopback) every request needs a user of
    the store (HTTP Basic over the county network; put TLS in front). Every read is logged (查询留痕)."""
    from povertyrules.store.access import log_read

    engine = connect(db)
    # /docs and /redoc would load scripts from a CDN: off; the schema stays at /openapi.json
    app = FastAPI(title="povertyrules inspector", description="Read-only decisions, reasons and runs.",
                  version="1", docs_url=None, redoc_url=None)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    protect = (lambda v: v) if show_identities else mask
    headers = security_headers()

    checked: dict[str, Any] = {"at": -1e9, "problems": []}

    def store_problems(household_id: str | None = None) -> list[str]:
        """The store's cheap verification (cached for a minute), with one household's rows when given."""
        import time

        from povertyrules.store.integrity import check_household, quick_check

        if household_id:
            return check_household(engine, household_id).problems
        if time.monotonic() - checked["at"] > 60:
            checked.update(at=time.monotonic(), problems=quick_check(engine).problems)
        return checked["problems"]

    @app.middleware("http")
    async def harden(request: Request, call_next):
        user = "local"
        if len(str(request.url)) > MAX_URL:
            response = JSONResponse({"detail": "request URL too long / 请求过长"}, status_code=414)
        elif require_login and (user := _basic_user(engine, request.headers.get("authorization"))) is None:
            user = "(refused)"
            response = JSONResponse({"detail": "login required / 请登录"}, status_code=401,
                                    headers={"WWW-Authenticate": 'Basic realm="povertyrules", charset="UTF-8"'})
        else:
            response = await call_next(request)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        household_id = _household_of(engine, request.url.path) if response.status_code < 400 else None
        log_read(engine, user, request.client.host if request.client else None, request.method, path,
                 household_id, response.status_code)
        response.headers.update(headers)
        if store_problems():
            response.headers["X-Store-Verification"] = "failed"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming the bad parameter and the rule it breaks, without echoing the value (it may be an id)."""
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    def latest_run() -> int | None:
        with Session(engine) as session:
            return session.execute(select(func.max(Run.id))).scalar()

    def search(q: str, page: int) -> tuple[list[dict], int]:
        """Households whose id is `q` or whose village contains it, each with its latest decision."""
        if not q:
            return [], 0
        latest = (select(Decision.household_id, func.max(Decision.run_id).label("run_id"))
                  .where(or_(Decision.household_id == stored_form(engine, q),
                             Decision.village.contains(q, autoescape=True)))
                  .group_by(Decision.household_id).subquery())
        joined = (Decision.household_id == latest.c.household_id) & (Decision.run_id == latest.c.run_id)
        with Session(engine) as session:
            total = session.execute(select(func.count()).select_from(latest)).scalar() or 0
            rows = session.execute(select(Decision.id.label("decision_id"), Decision.household_id, Decision.county,
                                          Decision.township, Decision.village, Decision.identification,
                                          Decision.exit, Decision.monitoring, Decision.run_id).join(latest, joined)
                                   .order_by(Decision.household_id)
                                   .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
        return [protect(dict(r._mapping)) for r in rows], total

    def household(hid: str, run: int | None) -> dict[str, Any]:
        try:
            decision = decision_of(engine, hid, run)
        except NotFound:
            raise HTTPException(404, "未找到该户 / household not found") from None  # never echo the id
        stored = get_run(engine, decision.run_id)
        data = explain_stored(stored, decision, reasons_of(engine, hid, decision.run_id)).to_dict()
        data["evidence"] = [e.model_dump(exclude={"id", "run_id"})
                            for e in evidence_of(engine, hid, decision.run_id)]
        data["contradictions"] = [c.model_dump(exclude={"id", "run_id"})
                                  for c in contradictions_of(engine, decision.run_id, hid)]
        data["location"] = {"county": decision.county, "township": decision.township, "village": decision.village}
        data["store_problems"] = store_problems(hid)
        data["history"] = [{"run_id": r.id, "time": r.created_at.isoformat(), "year": d.year,
                            "identification": d.identification, "exit": d.exit, "monitoring": d.monitoring,
                            "per_capita_income": d.per_capita_income} for r, d in history_of(engine, hid)]
        return protect(data)

    def run_summary(run_id: int) -> dict[str, Any]:
        try:
            stored = get_run(engine, run_id)
        except NotFound:
            raise HTTPException(404, "未找到该运行 / run not found") from None
        frame = decisions_frame(engine, run_id)
        counts = {d: frame[d].replace("", "—").value_counts().to_dict() for d in ("identification", "exit",
                                                                                   "monitoring")}
        by_township = frame.groupby(["township", "identification"]).size().unstack(fill_value=0)
        return {"run_id": stored.id, "time": stored.created_at.isoformat(), "operator": stored.operator,
                "input_file": stored.input_file, "rules_version": stored.rules_version, "decided": stored.decided,
                "error_rows": stored.error_rows, "counts": counts,
                "by_township": {t: {k: int(v) for k, v in row.items()} for t, row in by_township.iterrows()}}

    # -- JSON API ---------------------------------------------------------------------------------
    @app.get("/api/households", summary="Search households of the latest run by id or village")
    def api_search(q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY)], page: Page = 1) -> dict:
        rows, total = search(q, page)
        return {"query": q, "page": page, "page_size": PAGE_SIZE, "total": total, "households": rows}

    @app.get("/api/households/{household_id}", summary="A household's decision, reasons, clauses, history")
    def api_household(household_id: HouseholdId, run: OptionalRun = None) -> dict:
        return json.loads(json.dumps(household(household_id, run), default=str))

    @app.get("/api/runs", summary="The stored runs")
    def api_runs() -> list[dict]:
        with Session(engine) as session:
            runs = session.execute(select(Run.id, Run.created_at, Run.operator, Run.input_file, Run.year,
                                          Run.rules_version, Run.decided, Run.error_rows).order_by(Run.id)).all()
        return [protect({**r._mapping, "created_at": r.created_at.isoformat()}) for r in runs]

    @app.get("/api/runs/{run_id}", summary="Counts per status and township for a run")
    def api_run(run_id: RunId) -> dict:
        return protect(run_summary(run_id))

    # -- pages ------------------------------------------------------------------------------------
    def render(request: Request, name: str, lang: str, **context: Any) -> HTMLResponse:
        lang = lang if lang in TEXT else "zh"
        problems = context.get("h", {}).get("store_problems") or store_problems()
        return templates.TemplateResponse(request, name, {"t": TEXT[lang], "lang": lang, "store_problems": problems,
                                                          **context})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page_search(request: Request, q: Annotated[str, Query(max_length=MAX_QUERY)] = "", page: Page = 1,
                    lang: str = "zh"):
        rows, total = search(q, page)
        pages = max(1, -(-total // PAGE_SIZE))
        return render(request, "search.html", lang, q=q, shown_q=protect(q), rows=rows, total=total, page=page,
                      pages=pages, run_id=latest_run())

    @app.get("/household/{household_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_household(request: Request, household_id: HouseholdId, run: OptionalRun = None, lang: str = "zh"):
        return render(request, "household.html", lang, h=household(household_id, run))

    @app.get("/decision/{decision_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_decision(request: Request, decision_id: RunId, lang: str = "zh"):
        """A household's page by the stored decision's number, so links never carry a (masked) identity."""
        with Session(engine) as session:
            decision = session.get(Decision, decision_id)
        if decision is None:
            raise HTTPException(404, "未找到该决策 / decision not found")
        return render(request, "household.html", lang, h=household(decision.household_id, decision.run_id))

    @app.get("/run/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_run(request: Request, run_id: RunId, lang: str = "zh"):
        return render(request, "run.html", lang, r=run_summary(run_id))

    @app.get("/run/{run_id}/decisions.xlsx", summary="A run's decisions as xlsx (zh: Chinese headers and values)")
    def download_decisions(run_id: RunId, lang: str = "zh") -> Response:
        """Streamed: read from the store in chunks into a constant-memory workbook, sent as a file."""
        import os
        import tempfile

        from starlette.background import BackgroundTask
        from starlette.responses import FileResponse

        from povertyrules.decisions.files import XlsxWriter
        from povertyrules.store.explain import snapshot_rulebook

        try:
            book = snapshot_rulebook(get_run(engine, run_id))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        handle, path = tempfile.mkstemp(suffix=".xlsx")
        os.close(handle)
        writer = XlsxWriter(path, book, "zh" if lang == "zh" else "en")
        for chunk in decision_chunks(engine, run_id):
            writer.write(_masked_frame(chunk.drop(columns=["inputs", "run_id"]), show_identities))
        writer.close()
        return FileResponse(path, filename=f"decisions-run{run_id}.xlsx", background=BackgroundTask(os.unlink, path),
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    @app.get("/run/{run_id}/watchlist.xlsx", summary="A run's watchlist and MON-2 scale check as xlsx")
    def download_watchlist(run_id: RunId) -> Response:
        run_summary(run_id)
        households, scale = watchlist(engine, run_id)
        return _xlsx(_masked_frame(households, show_identities), f"watchlist-run{run_id}.xlsx",
                     {"scale": scale})

    return app


def _masked_frame(frame: pd.DataFrame, show: bool) -> pd.DataFrame:
    return frame if show else mask_frame(frame)


def _xlsx(frame: pd.DataFrame, name: str, sheets: dict[str, pd.DataFrame] | None = None) -> Response:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = write_table(frame, FilePath(folder) / name, sheet="data", sheets=sheets, mask=False)  # done above
        content = path.read_bytes()
    return Response(content, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

