"""The inspector's read-only web pages and JSON API over the audit store (FastAPI, server-rendered Jinja2).

Read-only by construction: every route is a GET and the store is only queried. Identity-card and phone
numbers are masked in every page, JSON answer and export unless the server starts with `show_identities`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, or_, select
from sqlmodel import Session

from povertyrules.io.tables import write_table
from povertyrules.store.database import connect
from povertyrules.store.explain import explain_stored
from povertyrules.store.models import Decision, Run
from povertyrules.store.reports import watchlist
from povertyrules.store.runs import NotFound, decision_of, decisions_frame, get_run, history_of, reasons_of

PAGE_SIZE = 50
ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
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


def mask(value: Any) -> Any:
    """Mask identity-card numbers (keep 6 + 4) and mobile numbers (keep 3 + 4) in text, lists and dicts."""
    if isinstance(value, str):
        return PHONE.sub(r"\1****\2", ID_NUMBER.sub(r"\1********\2", value))
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def create_app(db: str | None = None, show_identities: bool = False) -> FastAPI:
    engine = connect(db, must_exist=True)
    app = FastAPI(title="povertyrules inspector", description="Read-only decisions, reasons and runs.",
                  version="1")
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    protect = (lambda v: v) if show_identities else mask

    def latest_run() -> int | None:
        with Session(engine) as session:
            return session.execute(select(func.max(Run.id))).scalar()

    def search(q: str, page: int) -> tuple[list[dict], int]:
        """Households whose id is `q` or whose village contains it, each with its latest decision."""
        if not q:
            return [], 0
        latest = (select(Decision.household_id, func.max(Decision.run_id).label("run_id"))
                  .where(or_(Decision.household_id == q, Decision.village.contains(q)))
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
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        stored = get_run(engine, decision.run_id)
        data = explain_stored(stored, decision, reasons_of(engine, hid, decision.run_id)).to_dict()
        data["location"] = {"county": decision.county, "township": decision.township, "village": decision.village}
        data["history"] = [{"run_id": r.id, "time": r.created_at.isoformat(), "year": d.year,
                            "identification": d.identification, "exit": d.exit, "monitoring": d.monitoring,
                            "per_capita_income": d.per_capita_income} for r, d in history_of(engine, hid)]
        return protect(data)

    def run_summary(run_id: int) -> dict[str, Any]:
        try:
            stored = get_run(engine, run_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
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
    def api_search(q: str = Query(..., min_length=1), page: int = Query(1, ge=1)) -> dict:
        rows, total = search(q, page)
        return {"query": q, "page": page, "page_size": PAGE_SIZE, "total": total, "households": rows}

    @app.get("/api/households/{household_id}", summary="A household's decision, reasons, clauses, history")
    def api_household(household_id: str, run: int | None = None) -> dict:
        return json.loads(json.dumps(household(household_id, run), default=str))

    @app.get("/api/runs", summary="The stored runs")
    def api_runs() -> list[dict]:
        with Session(engine) as session:
            runs = session.execute(select(Run.id, Run.created_at, Run.operator, Run.input_file, Run.year,
                                          Run.rules_version, Run.decided, Run.error_rows).order_by(Run.id)).all()
        return [protect({**r._mapping, "created_at": r.created_at.isoformat()}) for r in runs]

    @app.get("/api/runs/{run_id}", summary="Counts per status and township for a run")
    def api_run(run_id: int) -> dict:
        return protect(run_summary(run_id))

    # -- pages ------------------------------------------------------------------------------------
    def render(request: Request, name: str, lang: str, **context: Any) -> HTMLResponse:
        lang = lang if lang in TEXT else "zh"
        return templates.TemplateResponse(request, name, {"t": TEXT[lang], "lang": lang, **context})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page_search(request: Request, q: str = "", page: int = Query(1, ge=1), lang: str = "zh"):
        rows, total = search(q, page)
        pages = max(1, -(-total // PAGE_SIZE))
        return render(request, "search.html", lang, q=q, shown_q=protect(q), rows=rows, total=total, page=page,
                      pages=pages, run_id=latest_run())

    @app.get("/household/{household_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_household(request: Request, household_id: str, run: int | None = None, lang: str = "zh"):
        return render(request, "household.html", lang, h=household(household_id, run))

    @app.get("/decision/{decision_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_decision(request: Request, decision_id: int, lang: str = "zh"):
        """A household's page by the stored decision's number, so links never carry a (masked) identity."""
        with Session(engine) as session:
            decision = session.get(Decision, decision_id)
        if decision is None:
            raise HTTPException(404, f"no decision {decision_id}")
        return render(request, "household.html", lang, h=household(decision.household_id, decision.run_id))

    @app.get("/run/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_run(request: Request, run_id: int, lang: str = "zh"):
        return render(request, "run.html", lang, r=run_summary(run_id))

    @app.get("/run/{run_id}/decisions.xlsx", summary="A run's decisions as xlsx")
    def download_decisions(run_id: int) -> Response:
        frame = decisions_frame(engine, run_id).drop(columns=["inputs", "run_id"])
        return _xlsx(_masked_frame(frame, show_identities), f"decisions-run{run_id}.xlsx")

    @app.get("/run/{run_id}/watchlist.xlsx", summary="A run's watchlist and MON-2 scale check as xlsx")
    def download_watchlist(run_id: int) -> Response:
        households, scale = watchlist(engine, run_id)
        return _xlsx(_masked_frame(households, show_identities), f"watchlist-run{run_id}.xlsx",
                     {"scale": scale})

    return app


def _masked_frame(frame: pd.DataFrame, show: bool) -> pd.DataFrame:
    if show:
        return frame
    return frame.apply(lambda column: column.map(mask) if column.dtype == object or
                       pd.api.types.is_string_dtype(column) else column)


def _xlsx(frame: pd.DataFrame, name: str, sheets: dict[str, pd.DataFrame] | None = None) -> Response:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = write_table(frame, Path(folder) / name, sheet="data", sheets=sheets)
        content = path.read_bytes()
    return Response(content, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

