"""The inspector's read-only web pages and JSON API over the audit store (FastAPI, server-rendered Jinja2).

Read-only by construction: every route is a GET and the store is only queried. Identity-card and phone
numbers are masked in every page, JSON answer and export unless the server starts with `show_identities`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path as FilePath
from typing import Annotated, Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, or_, select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from povertyrules.lang import safeyaml
from povertyrules.privacy import mask
from povertyrules.store.changes import missing_names, readable_changes
from povertyrules.store.database import connect, stored_form
from povertyrules.store.explain import snapshot_rulebook
from povertyrules.store.models import Decision, Run
from povertyrules.store.procedures import procedures_of
from povertyrules.store.readable import clause_texts, readable_reasons
from povertyrules.store.review import Review, percent
from povertyrules.store.review import review as build_review
from povertyrules.store.runs import (
    NotFound,
    contradictions_of,
    decision_of,
    decisions_frame,
    evidence_of,
    get_run,
    history_of,
)
from povertyrules.web.batching import Explainer
from povertyrules.web.exports import build as build_export
from povertyrules.web.exports import pool

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
TEXT: dict[str, dict[str, str]] = safeyaml.load(FilePath(__file__).with_name("labels.yaml"))
DECISIONS = ("identification", "exit", "monitoring")
RECENT_RUNS = 10


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


_HOUSEHOLD_PATH = re.compile(r"^/(?:api/households|household)/([^/]+)$")
_DECISION_PATH = re.compile(r"^/decision/(\d{1,9})$")


def _household_in_path(path: str) -> str | None:
    """The household a request names in its path (no database read), for the access log."""
    from urllib.parse import unquote

    match = _HOUSEHOLD_PATH.match(path)
    return unquote(match.group(1))[:MAX_ID] if match else None


def _household_of(engine, path: str) -> str | None:
    """The household a request reads, for the access log."""
    named = _household_in_path(path)
    if named is not None:
        return named
    match = _DECISION_PATH.match(path)
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


#: how `serve --workers N` hands its settings to the worker processes (each builds its own app)
SERVED = "POVERTYRULES_SERVED"


def served_app() -> FastAPI:
    """The app of one worker process of `serve --workers N` (settings from the serving command)."""
    settings = json.loads(os.environ[SERVED])
    return create_app(settings["db"], settings["show_identities"], settings["require_login"])


def create_app(db: str | None = None, show_identities: bool = False, require_login: bool = False) -> FastAPI:
    """The inspector's app. With `require_login` (any address beyond loopback) every request needs a user of
    the store (HTTP Basic over the county network; put TLS in front). Every read is logged (查询留痕)."""
    from povertyrules.store.access import ReadLog

    engine = connect(db, must_exist=True)
    reads = ReadLog(engine)
    # /docs and /redoc would load scripts from a CDN: off; the schema stays at /openapi.json
    app = FastAPI(title="povertyrules inspector", description="Read-only decisions, reasons and runs.",
                  version="1", docs_url=None, redoc_url=None)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.auto_reload = False  # the templates ship with the package: no file check on every page
    templates.env.filters["percent"] = percent
    templates.env.filters["number"] = lambda v: "—" if v is None or v != v else f"{v:,.0f}" if float(v).is_integer() \
        else f"{v:,.2f}".rstrip("0").rstrip(".")
    protect = (lambda v: v) if show_identities else mask
    exports = FilePath(tempfile.mkdtemp(prefix="povertyrules-exports-"))  # a stored run never changes: build once
    locks: dict[Any, threading.Lock] = {}
    guard = threading.Lock()
    reviews: dict[int, Review] = {}
    headers = security_headers()

    checked: dict[str, Any] = {"at": -1e9}

    def recent_problems() -> list[str] | None:
        """The store's cheap verification as last made, or None when it is due again (over a minute old)."""
        report = checked.get("report")
        return report.problems if report is not None and time.monotonic() - checked["at"] <= 60 else None

    def store_problems(household_id: str | None = None) -> list[str]:
        """The store's cheap verification (cached for a minute), with one household's rows when given."""
        from povertyrules.store.integrity import check_household, quick_check

        if time.monotonic() - checked["at"] > 60:
            checked.update(at=time.monotonic(), report=quick_check(engine))
        if household_id:
            return check_household(engine, household_id, checked["report"]).problems
        return checked["report"].problems

    def harden(inner):
        """The app `inner` with every answer refused if the URL is too long or (beyond loopback) without a
        user; logged once its status is known and before anything is sent (no read goes unlogged); with the
        security headers, and a warning header when the store fails its check. Plain ASGI (no extra task and
        streams per request, as `@app.middleware` would add)."""

        async def hardened(scope, receive, send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            await _hardened(inner, scope, receive, send)

        return hardened

    async def _hardened(inner, scope, receive, send) -> None:
        request = Request(scope)
        user = "local"
        refusal = None
        if len(str(request.url)) > MAX_URL:
            refusal = JSONResponse({"detail": "request URL too long / 请求过长"}, status_code=414)
        elif require_login and (user := await run_in_threadpool(_basic_user, engine,
                                                                 request.headers.get("authorization"))) is None:
            user = "(refused)"
            refusal = JSONResponse({"detail": "login required / 请登录"}, status_code=401,
                                   headers={"WWW-Authenticate": 'Basic realm="povertyrules", charset="UTF-8"'})

        async def answer(message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                household_id = None
                if status < 400:  # (a thread only where the household is found in the store)
                    household_id = _household_in_path(request.url.path)
                    if household_id is None and _DECISION_PATH.match(request.url.path):
                        household_id = await run_in_threadpool(_household_of, engine, request.url.path)
                await asyncio.wrap_future(reads.log(user, request.client.host if request.client else None,
                                                    request.method, path, household_id, status))
                answered = MutableHeaders(scope=message)
                answered.update(headers)
                problems = recent_problems()
                if problems is None:  # (the check is due: it reads the store, in a thread)
                    problems = await run_in_threadpool(store_problems)
                if problems:
                    answered["X-Store-Verification"] = "failed"
            await send(message)

        await (inner if refusal is None else refusal)(scope, receive, answer)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming the bad parameter and the rule it breaks, without echoing the value (it may be an id)."""
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    def once(key: Any) -> threading.Lock:
        with guard:
            return locks.setdefault(key, threading.Lock())

    @functools.lru_cache(maxsize=256)
    def run_of(run_id: int) -> Run:  # a stored run never changes (append-only)
        return get_run(engine, run_id)

    def book_of(run_id: int):
        return snapshot_rulebook(run_of(run_id))

    @functools.lru_cache(maxsize=256)
    def trace_rules_of(run_id: int) -> list[str]:
        return json.loads(run_of(run_id).trace_rules)

    def label(run_id: int, decision: str, value: str | None, lang: str) -> str:
        return book_of(run_id).decisions[decision].label(value or "", lang)

    def latest_run() -> int | None:
        with Session(engine) as session:
            return session.execute(select(func.max(Run.id))).scalar()

    def recent_runs() -> list[dict]:
        with Session(engine) as session:
            rows = session.execute(select(Run.id, Run.created_at, Run.operator, Run.input_file, Run.year,
                                          Run.decided, Run.error_rows).order_by(Run.id.desc())
                                   .limit(RECENT_RUNS)).all()
        return [protect({**r._mapping, "created_at": r.created_at.isoformat()}) for r in rows]

    def review_of(run_id: int) -> Review:
        try:
            get_run(engine, run_id)
        except NotFound:
            raise HTTPException(404, "未找到该运行 / run not found") from None
        with once(("review", run_id)):
            if run_id not in reviews:
                reviews[run_id] = build_review(engine, run_id)
        return reviews[run_id]

    def search(q: str, page: int, lang: str = "zh") -> tuple[list[dict], int]:
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
        out = []
        for r in rows:
            row = dict(r._mapping)
            row["labels"] = {d: label(row["run_id"], d, row[d], lang) for d in DECISIONS}
            out.append(protect(row))
        return out, total

    explainer = Explainer(engine)  # concurrent readers' explanations are worked out together
    explained = explainer.explained

    def warm() -> None:
        """At start-up (in every worker process): the latest run's rule set rebuilt from its snapshot, one of
        its decisions explained and the household page's template compiled, so that the first readers of a
        fresh server do not all wait while that is done (about a second). Whatever fails here fails again,
        and is answered, on the page that needs it."""
        try:
            run_id = latest_run()
            templates.get_template("household.html")
            if run_id is None:
                return
            book_of(run_id)
            with Session(engine) as session:
                first = session.execute(select(func.min(Decision.id)).where(Decision.run_id == run_id)).scalar()
            if first is not None:
                explained(int(first))
        except Exception:  # (the page that needs it reports it)
            return
        # the workbook builder's process started now, in the background: starting it (a new interpreter
        # importing the package, at full priority before it lowers its own) would otherwise take the CPU from
        # the readers of pages at the first download
        threading.Thread(target=_start_builder, name="export-warm", daemon=True).start()

    def explanation(decision: Decision) -> dict[str, Any]:
        return explained(int(decision.id))

    def household(hid: str, run: int | None, lang: str = "zh") -> dict[str, Any]:
        try:
            decision = decision_of(engine, hid, run)
        except NotFound:
            raise HTTPException(404, "未找到该户 / household not found") from None  # never echo the id
        data = dict(explanation(decision))
        data["evidence"] = [e.model_dump(exclude={"id", "run_id"})
                            for e in evidence_of(engine, hid, decision.run_id)]
        data["contradictions"] = [{**c.model_dump(exclude={"id", "run_id"}),
                                   "label": missing_names(book_of(decision.run_id), c.column, lang)}
                                  for c in contradictions_of(engine, decision.run_id, hid)]
        data["evidence_clauses"] = "、".join(dict.fromkeys(e["clause"] for e in data["evidence"] if e["clause"]))
        data["location"] = {"county": decision.county, "township": decision.township, "village": decision.village}
        data["labels"] = {d: label(decision.run_id, d, getattr(decision, d), lang) for d in DECISIONS}
        data["store_problems"] = store_problems(hid)
        data["history"] = [{"run_id": r.id, "time": r.created_at.isoformat(), "year": d.year,
                            "identification": d.identification, "exit": d.exit, "monitoring": d.monitoring,
                            "labels": {x: label(r.id, x, getattr(d, x), lang) for x in DECISIONS},
                            "per_capita_income": d.per_capita_income} for r, d in history_of(engine, hid)]
        data["procedures"] = procedures_of(engine, book_of(decision.run_id), decision)  # the run's own rules
        data["changes"] = readable_changes(book_of(decision.run_id), data, lang)
        data["sections"] = readable_reasons(book_of(decision.run_id), decision.trace or "",
                                            trace_rules_of(decision.run_id), data["decision"], data["reasons"], lang)
        data["clause_texts"] = clause_texts(data["clauses"], lang)
        data["missing"] = missing_names(book_of(decision.run_id), decision.missing_columns, lang)
        return protect(data)

    def run_summary(run_id: int, lang: str = "zh") -> dict[str, Any]:
        try:
            stored = get_run(engine, run_id)
        except NotFound:
            raise HTTPException(404, "未找到该运行 / run not found") from None
        book = book_of(run_id)
        frame = decisions_frame(engine, run_id)
        townships = frame["township"].astype(object).where(frame["township"].notna() & (frame["township"] != ""),
                                                           TEXT[lang]["blank"])
        counts, columns = {}, []
        for d in DECISIONS:
            values = frame[d].astype(object).fillna("")
            counts[d] = {book.decisions[d].label(v, lang): int(k) for v, k in values.value_counts().items()}
            order = [v for v in [*book.decisions[d].values, "review"] if (values == v).any()]
            columns += [(d, v, book.decisions[d].label(v, lang)) for v in order]
        table = []
        groups = sorted(frame.groupby(townships, sort=False), key=lambda g: (g[0] == TEXT[lang]["blank"], g[0]))
        for township, group in groups:  # by name, 未填 (a blank township) last
            row = {"township": township, "households": len(group),
                   "counts": [int((group[d].astype(object).fillna("") == v).sum()) for d, v, _ in columns]}
            table.append(row)
        table.append({"township": None, "households": len(frame),
                      "counts": [int((frame[d].astype(object).fillna("") == v).sum()) for d, v, _ in columns]})
        return {"run_id": stored.id, "time": stored.created_at.isoformat(), "operator": stored.operator,
                "input_file": stored.input_file, "rules_version": stored.rules_version, "decided": stored.decided,
                "error_rows": stored.error_rows, "counts": counts,
                "columns": [{"decision": d, "value": v, "label": x} for d, v, x in columns],
                "by_township": table}

    # -- JSON API ---------------------------------------------------------------------------------
    @app.get("/api/households", summary="Search households of the latest run by id or village")
    def api_search(q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY)], page: Page = 1,
                   lang: str = "en") -> dict:
        rows, total = search(q, page, lang)
        return {"query": protect(q), "page": page, "page_size": PAGE_SIZE, "total": total, "households": rows}

    @app.get("/api/households/{household_id}", summary="A household's decision, reasons, clauses, history")
    def api_household(household_id: HouseholdId, run: OptionalRun = None, lang: str = "en") -> dict:
        return json.loads(json.dumps(household(household_id, run, _lang(lang)), default=str))

    @app.get("/api/runs", summary="The stored runs")
    def api_runs() -> list[dict]:
        with Session(engine) as session:
            runs = session.execute(select(Run.id, Run.created_at, Run.operator, Run.input_file, Run.year,
                                          Run.rules_version, Run.decided, Run.error_rows).order_by(Run.id)).all()
        return [protect({**r._mapping, "created_at": r.created_at.isoformat()}) for r in runs]

    @app.get("/api/runs/{run_id}", summary="Counts per status and township for a run")
    def api_run(run_id: RunId, lang: str = "en") -> dict:
        return protect(run_summary(run_id, _lang(lang)))

    @app.get("/api/runs/{run_id}/review", summary="核查: records against rules, per check, township and village")
    def api_review(run_id: RunId, lang: str = "en") -> dict:
        result, lang = review_of(run_id), _lang(lang)
        return json.loads(json.dumps({"run_id": run_id, "lines": result.lines(lang),
                                      "summary": result.summary(lang).to_dict(orient="records"),
                                      "by_township": result.by_place("township", lang).to_dict(orient="records")},
                                     default=lambda v: None if v is pd.NA else str(v)))

    # -- pages ------------------------------------------------------------------------------------
    def render(request: Request, name: str, lang: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        lang = lang if lang in TEXT else "zh"
        problems = context.get("h", {}).get("store_problems") or store_problems()
        return templates.TemplateResponse(request, name, {"t": TEXT[lang], "lang": lang, "store_problems": problems,
                                                          "switch": _switched(request, lang), **context},
                                          status_code=status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """A page a browser asked for that is not there: a page in the reader's language; JSON for programs."""
        if request.url.path.startswith("/api") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        lang = _lang(request.query_params.get("lang", "zh"))
        zh, _, en = str(exc.detail).partition(" / ")
        message = (zh if lang == "zh" else en) if en else TEXT[lang]["page_not_found"] if exc.status_code == 404 \
            else str(exc.detail)  # our own details are "中文 / English"; the framework's are English
        return await run_in_threadpool(render, request, "error.html", lang, exc.status_code, message=message)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page_search(request: Request, q: Annotated[str, Query(max_length=MAX_QUERY)] = "", page: Page = 1,
                    lang: str = "zh"):
        lang = _lang(lang)
        rows, total = search(q, page, lang)
        pages = max(1, -(-total // PAGE_SIZE))
        if page > pages:  # past the last page: the last page
            page = pages
            rows, total = search(q, page, lang)
        run_id = latest_run()
        review = review_of(run_id).lines(lang) if run_id and not q else []
        return render(request, "search.html", lang, q=q, shown_q=protect(q), rows=rows, total=total, page=page,
                      pages=pages, pager=pager(page, pages), run_id=run_id, runs=recent_runs() if not q else [],
                      review=review)

    @app.get("/household/{household_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_household(request: Request, household_id: HouseholdId, run: OptionalRun = None, lang: str = "zh"):
        return render(request, "household.html", lang, h=household(household_id, run, _lang(lang)))

    @app.get("/decision/{decision_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_decision(request: Request, decision_id: RunId, lang: str = "zh"):
        """A household's page by the stored decision's number, so links never carry a (masked) identity."""
        with Session(engine) as session:
            decision = session.get(Decision, decision_id)
        if decision is None:
            raise HTTPException(404, "未找到该决策 / decision not found")
        return render(request, "household.html", lang, h=household(decision.household_id, decision.run_id,
                                                                    _lang(lang)))

    @app.get("/run/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_run(request: Request, run_id: RunId, lang: str = "zh"):
        return render(request, "run.html", lang, r=protect(run_summary(run_id, _lang(lang))),
                      review=review_of(run_id).lines(_lang(lang)))

    @app.get("/run/{run_id}/review", response_class=HTMLResponse, include_in_schema=False)
    def page_review(request: Request, run_id: RunId, lang: str = "zh",
                    check: Annotated[str, Query(max_length=MAX_QUERY)] = "", page: Page = 1):
        lang = _lang(lang)
        result = review_of(run_id)
        flagged = result.households(lang, link="{decision_id}")
        words = result.labels[lang]
        checks = [(r.spec.id, getattr(r.spec.label, lang)) for r in result.checked]
        chosen = dict(checks).get(check)
        if chosen:
            flagged = flagged[flagged[words["check"]] == chosen]
        pages = max(1, -(-len(flagged) // PAGE_SIZE))
        page = min(page, pages)  # past the last page: the last page
        shown = flagged.iloc[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
        links = shown.pop(words["link"]).tolist() if words["link"] in shown else []
        return render(request, "review.html", lang, run_id=run_id, lines=result.lines(lang),
                      township=_cells(result.by_place("township", lang)),
                      village=_cells(result.by_place("village", lang)),
                      households=protect(_cells(shown)), links=links, total=len(flagged), page=page,
                      pages=pages, pager=pager(page, pages), checks=checks, check=check if chosen else "")

    def export(run_id: int, kind: str, lang: str, link: str = "") -> FileResponse:
        """A run's workbook: built once, in a worker process (see `povertyrules.web.exports`), then streamed."""
        get_run_or_404(run_id)
        name = f"{kind}-run{run_id}{'' if lang == 'zh' else '-' + lang}.xlsx"
        path = exports / name
        with once(("export", name)):
            if not path.exists():
                pool().submit(build_export, str(engine.url.render_as_string(hide_password=False)), run_id, kind,
                              lang, link, show_identities, str(path)).result()
        return FileResponse(path, filename=name,
                            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    @app.get("/run/{run_id}/decisions.xlsx", summary="A run's decisions as xlsx (zh: Chinese headers and values)")
    def download_decisions(run_id: RunId, lang: str = "zh"):
        return export(run_id, "decisions", _lang(lang))

    @app.get("/run/{run_id}/watchlist.xlsx", summary="A run's watchlist and MON-2 scale check as xlsx")
    def download_watchlist(run_id: RunId, lang: str = "zh"):
        return export(run_id, "watchlist", _lang(lang))

    @app.get("/run/{run_id}/review.xlsx", summary="核查: a run's records against its rules as xlsx")
    def download_review(request: Request, run_id: RunId, lang: str = "zh"):
        return export(run_id, "review", _lang(lang), str(request.base_url).rstrip("/") + "/decision/{decision_id}")

    def get_run_or_404(run_id: int) -> None:
        try:
            get_run(engine, run_id)
        except NotFound:
            raise HTTPException(404, "未找到该运行 / run not found") from None

    app.add_middleware(_Wrapped, wrap=harden)  # (where `@app.middleware("http")` would have put it)
    warm()
    return app


class _Wrapped:
    """A middleware made by a function of the app below it (`wrap(app)` is the ASGI app to run)."""

    def __init__(self, app, wrap) -> None:
        self.asgi = wrap(app)

    async def __call__(self, scope, receive, send) -> None:
        await self.asgi(scope, receive, send)


def _start_builder() -> None:
    try:
        pool().submit(int).result()
    except Exception:  # (a download that needs it reports it)
        return


def _lang(lang: str) -> str:
    return lang if lang in TEXT else "zh"


def _switched(request: Request, lang: str) -> str:
    """This page in the other language, with the rest of its query kept (a query holding an identity number
    is left out, so the number is not written into the page)."""
    from urllib.parse import urlencode

    kept = {k: v for k, v in request.query_params.items() if k != "lang" and mask(v) == v}
    return f"{request.url.path}?{urlencode({**kept, 'lang': 'en' if lang == 'zh' else 'zh'})}"


def pager(page: int, pages: int, around: int = 3) -> list[int | None]:
    """Page numbers to link: the first, the last and those around `page`; None marks a gap."""
    shown = sorted({1, pages, *range(max(1, page - around), min(pages, page + around) + 1)})
    out: list[int | None] = []
    for i, p in enumerate(shown):
        if i and p - shown[i - 1] > 1:
            out.append(None)
        out.append(p)
    return out


def _cells(frame: pd.DataFrame) -> dict[str, Any]:
    """A table for a template: its headers and rows of plain cells (blank where missing)."""
    rows = [[None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v for v in row]
            for row in frame.astype(object).itertuples(index=False, name=None)]
    return {"columns": [str(c) for c in frame.columns], "rows": rows}
