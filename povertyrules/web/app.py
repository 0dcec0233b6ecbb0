"""The inspector's read-only web pages and JSON API over the audit store (FastAPI, server-rendered Jinja2).

Read-only by construction: every route is a GET and the store is only queried. Identity-card and phone
numbers are masked in every page, JSON answer and export unless the server starts with `show_identities`.
"""

from __future__ import annotations

import functools
import json
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, or_, select
from sqlmodel import Session

from povertyrules.lang.rulebook import load_rulebook
from povertyrules.store.changes import readable_changes
from povertyrules.store.database import connect
from povertyrules.store.explain import explain_stored, snapshot_rulebook
from povertyrules.store.models import Decision, Run
from povertyrules.store.procedures import procedures_of
from povertyrules.store.review import Review, percent
from povertyrules.store.review import review as build_review
from povertyrules.store.runs import NotFound, decision_of, decisions_frame, get_run, history_of, reasons_of
from povertyrules.web.exports import build as build_export
from povertyrules.web.exports import mask, pool

PAGE_SIZE = 50
TEXT: dict[str, dict[str, str]] = yaml.safe_load((Path(__file__).with_name("labels.yaml")).read_text("utf-8"))
DECISIONS = ("identification", "exit", "monitoring")
RECENT_RUNS = 10


def create_app(db: str | None = None, show_identities: bool = False) -> FastAPI:
    engine = connect(db, must_exist=True)
    app = FastAPI(title="povertyrules inspector", description="Read-only decisions, reasons and runs.",
                  version="1")
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    templates.env.filters["percent"] = percent
    templates.env.filters["number"] = lambda v: "—" if v is None or v != v else f"{v:,.0f}" if float(v).is_integer() \
        else f"{v:,.2f}".rstrip("0").rstrip(".")
    protect = (lambda v: v) if show_identities else mask
    exports = Path(tempfile.mkdtemp(prefix="povertyrules-exports-"))  # a stored run never changes: build once
    locks: dict[Any, threading.Lock] = {}
    guard = threading.Lock()
    reviews: dict[int, Review] = {}

    def once(key: Any) -> threading.Lock:
        with guard:
            return locks.setdefault(key, threading.Lock())

    def book_of(run_id: int):
        return snapshot_rulebook(get_run(engine, run_id))

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
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        with once(("review", run_id)):
            if run_id not in reviews:
                reviews[run_id] = build_review(engine, run_id)
        return reviews[run_id]

    def search(q: str, page: int, lang: str = "zh") -> tuple[list[dict], int]:
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
        out = []
        for r in rows:
            row = dict(r._mapping)
            row["labels"] = {d: label(row["run_id"], d, row[d], lang) for d in DECISIONS}
            out.append(protect(row))
        return out, total

    @functools.lru_cache(maxsize=4096)
    def explained(decision_id: int) -> dict[str, Any]:
        """A stored decision's explanation (a stored decision never changes, so it is worked out once)."""
        with Session(engine) as session:
            decision = session.get(Decision, decision_id)
        stored = get_run(engine, decision.run_id)
        return explain_stored(stored, decision, reasons_of(engine, decision.household_id, decision.run_id)).to_dict()

    def explanation(decision: Decision) -> dict[str, Any]:
        return explained(int(decision.id))

    def household(hid: str, run: int | None, lang: str = "zh") -> dict[str, Any]:
        try:
            decision = decision_of(engine, hid, run)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        data = dict(explanation(decision))
        data["location"] = {"county": decision.county, "township": decision.township, "village": decision.village}
        data["labels"] = {d: label(decision.run_id, d, getattr(decision, d), lang) for d in DECISIONS}
        data["history"] = [{"run_id": r.id, "time": r.created_at.isoformat(), "year": d.year,
                            "identification": d.identification, "exit": d.exit, "monitoring": d.monitoring,
                            "labels": {x: label(r.id, x, getattr(d, x), lang) for x in DECISIONS},
                            "per_capita_income": d.per_capita_income} for r, d in history_of(engine, hid)]
        data["procedures"] = procedures_of(engine, load_rulebook(), decision)
        data["changes"] = readable_changes(book_of(decision.run_id), data, lang)
        return protect(data)

    def run_summary(run_id: int, lang: str = "zh") -> dict[str, Any]:
        try:
            stored = get_run(engine, run_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
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
        for township, group in frame.groupby(townships, sort=True):
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
    def api_search(q: str = Query(..., min_length=1), page: int = Query(1, ge=1), lang: str = "en") -> dict:
        rows, total = search(q, page, lang)
        return {"query": q, "page": page, "page_size": PAGE_SIZE, "total": total, "households": rows}

    @app.get("/api/households/{household_id}", summary="A household's decision, reasons, clauses, history")
    def api_household(household_id: str, run: int | None = None, lang: str = "en") -> dict:
        return json.loads(json.dumps(household(household_id, run, lang), default=str))

    @app.get("/api/runs", summary="The stored runs")
    def api_runs() -> list[dict]:
        with Session(engine) as session:
            runs = session.execute(select(Run.id, Run.created_at, Run.operator, Run.input_file, Run.year,
                                          Run.rules_version, Run.decided, Run.error_rows).order_by(Run.id)).all()
        return [protect({**r._mapping, "created_at": r.created_at.isoformat()}) for r in runs]

    @app.get("/api/runs/{run_id}", summary="Counts per status and township for a run")
    def api_run(run_id: int, lang: str = "en") -> dict:
        return protect(run_summary(run_id, lang))

    @app.get("/api/runs/{run_id}/review", summary="核查: records against rules, per check, township and village")
    def api_review(run_id: int, lang: str = "en") -> dict:
        result = review_of(run_id)
        return json.loads(json.dumps({"run_id": run_id, "lines": result.lines(lang),
                                      "summary": result.summary(lang).to_dict(orient="records"),
                                      "by_township": result.by_place("township", lang).to_dict(orient="records")},
                                     default=lambda v: None if v is pd.NA else str(v)))

    # -- pages ------------------------------------------------------------------------------------
    def render(request: Request, name: str, lang: str, **context: Any) -> HTMLResponse:
        lang = lang if lang in TEXT else "zh"
        return templates.TemplateResponse(request, name, {"t": TEXT[lang], "lang": lang, **context})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page_search(request: Request, q: str = "", page: int = Query(1, ge=1), lang: str = "zh"):
        lang = lang if lang in TEXT else "zh"
        rows, total = search(q, page, lang)
        pages = max(1, -(-total // PAGE_SIZE))
        run_id = latest_run()
        review = review_of(run_id).lines(lang) if run_id and not q else []
        return render(request, "search.html", lang, q=q, shown_q=protect(q), rows=rows, total=total, page=page,
                      pages=pages, pager=pager(page, pages), run_id=run_id, runs=recent_runs() if not q else [],
                      review=review)

    @app.get("/household/{household_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_household(request: Request, household_id: str, run: int | None = None, lang: str = "zh"):
        return render(request, "household.html", lang, h=household(household_id, run, _lang(lang)))

    @app.get("/decision/{decision_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_decision(request: Request, decision_id: int, lang: str = "zh"):
        """A household's page by the stored decision's number, so links never carry a (masked) identity."""
        with Session(engine) as session:
            decision = session.get(Decision, decision_id)
        if decision is None:
            raise HTTPException(404, f"no decision {decision_id}")
        return render(request, "household.html", lang, h=household(decision.household_id, decision.run_id,
                                                                    _lang(lang)))

    @app.get("/run/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_run(request: Request, run_id: int, lang: str = "zh"):
        return render(request, "run.html", lang, r=protect(run_summary(run_id, _lang(lang))),
                      review=review_of(run_id).lines(_lang(lang)))

    @app.get("/run/{run_id}/review", response_class=HTMLResponse, include_in_schema=False)
    def page_review(request: Request, run_id: int, lang: str = "zh", check: str = "", page: int = Query(1, ge=1)):
        lang = _lang(lang)
        result = review_of(run_id)
        flagged = result.households(lang, link="{decision_id}")
        words = result.labels[lang]
        checks = [(r.spec.id, getattr(r.spec.label, lang)) for r in result.checked]
        chosen = dict(checks).get(check)
        if chosen:
            flagged = flagged[flagged[words["check"]] == chosen]
        pages = max(1, -(-len(flagged) // PAGE_SIZE))
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
    def download_decisions(run_id: int, lang: str = "zh"):
        return export(run_id, "decisions", _lang(lang))

    @app.get("/run/{run_id}/watchlist.xlsx", summary="A run's watchlist and MON-2 scale check as xlsx")
    def download_watchlist(run_id: int):
        return export(run_id, "watchlist", "en")

    @app.get("/run/{run_id}/review.xlsx", summary="核查: a run's records against its rules as xlsx")
    def download_review(request: Request, run_id: int, lang: str = "zh"):
        return export(run_id, "review", _lang(lang), str(request.base_url).rstrip("/") + "/decision/{decision_id}")

    def get_run_or_404(run_id: int) -> None:
        try:
            get_run(engine, run_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    return app


def _lang(lang: str) -> str:
    return lang if lang in TEXT else "zh"


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
