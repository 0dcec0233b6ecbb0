"""Department alerts and household reports (MON-3, MON-5.1) as events: JSON lines or CSV with
``household_id, date, source, kind, amount, note``. Bad events are kept with their line number, never lost."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

#: kind -> what the amount means
KINDS = {
    "medical_expense": "medical costs the family paid (yuan): rigid expenditure, 因病",
    "disaster_loss": "loss from a natural disaster (yuan): rigid expenditure, 因灾",
    "epidemic_impact": "costs from an epidemic (yuan): rigid expenditure, 因疫情",
    "disability_certified": "a member certified disabled: one able-bodied member fewer (amount unused)",
    "job_loss": "annual income lost with a job (yuan)",
    "income_report": "the household's reported annual net income (yuan)",
}
RIGID = {"medical_expense": "因病", "disaster_loss": "因灾", "epidemic_impact": "因疫情"}
#: source -> the MON-3 route it comes by
SOURCES = {
    "self_report": "self_report", "cadre_visit": "cadre_visit",
    "health": "department_screening", "emergency_management": "department_screening",
    "disabled_persons_federation": "department_screening", "civil_affairs": "department_screening",
    "human_resources": "department_screening",
}
FIELDS = ("household_id", "date", "source", "kind", "amount", "note")


@dataclass(frozen=True)
class Event:
    line: int
    household_id: str
    date: dt.date
    source: str
    kind: str
    amount: float | None
    note: str | None


@dataclass(frozen=True)
class Reject:
    line: int
    raw: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def raw_records(path: Path, start_line: int = 1) -> Iterator[tuple[int, str, dict | None]]:
    """(line number, raw text, record or None when unreadable) for each event line of a .jsonl or .csv file."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        if path.suffix.lower() == ".csv":
            lines = handle.readlines()
            header = next(csv.reader([lines[0]])) if lines else []
            for number, text in enumerate(lines[1:], start=2):
                if number < start_line or not text.strip():
                    continue
                values = next(csv.reader([text]))
                yield number, text.rstrip("\r\n"), dict(zip(header, values, strict=False))
        else:
            for number, text in enumerate(handle, start=1):
                if number < start_line or not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:
                    record = None
                yield number, text.rstrip("\r\n"), record if isinstance(record, dict) else None


def validate(number: int, raw: str, record: dict | None, known: Iterable[str] | None) -> Event | Reject:
    """An `Event`, or a `Reject` naming what is wrong (unknown household, bad date, negative amount, …)."""
    if record is None:
        return Reject(number, raw, "not a JSON object / 不是有效的JSON对象")
    hid = str(record.get("household_id") or "").strip()
    if not hid:
        return Reject(number, raw, "household_id is missing / 缺少户编号")
    if known is not None and hid not in known:
        return Reject(number, raw, f"unknown household {hid} / 户编号不存在")
    try:
        date = dt.date.fromisoformat(str(record.get("date", "")).strip())
    except ValueError:
        return Reject(number, raw, f"bad date {record.get('date')!r} (YYYY-MM-DD) / 日期无效")
    kind, source = str(record.get("kind", "")).strip(), str(record.get("source", "")).strip()
    if kind not in KINDS:
        return Reject(number, raw, f"unknown kind {kind!r}; kinds: {', '.join(KINDS)} / 事件类型无效")
    if source not in SOURCES:
        return Reject(number, raw, f"unknown source {source!r}; sources: {', '.join(SOURCES)} / 来源无效")
    amount_text = str(record.get("amount") if record.get("amount") is not None else "").strip()
    amount = None
    if amount_text:
        try:
            amount = float(amount_text)
        except ValueError:
            return Reject(number, raw, f"amount {amount_text!r} is not a number / 金额须为数字")
        if amount < 0:
            return Reject(number, raw, f"negative amount {amount:g} / 金额不能为负")
    elif kind != "disability_certified":
        return Reject(number, raw, f"{kind} needs an amount / 缺少金额")
    return Event(number, hid, date, source, kind, amount, (str(record.get("note") or "").strip() or None))
