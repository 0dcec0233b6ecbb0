"""Department alerts and household reports (MON-3, MON-5.1) as events: JSON lines or CSV with
``household_id, date, source, kind, amount, note``. Bad events are kept with their line number, never lost."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
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
#: limits an event must respect to be applied (larger values are typing errors or attacks)
MAX_LINE = 10_000  # characters
MAX_AMOUNT = 1e12  # yuan
MAX_ID = 64  # characters of a household id
FIRST_YEAR = 2000  # events before this are not reports about the current regime


@dataclass(frozen=True)
class Event:
    line: int
    household_id: str
    date: dt.date
    source: str
    kind: str
    amount: float | None
    note: str | None

    @property
    def key(self) -> str:
        """The event's identity by content: the same report read twice is the same event."""
        content = json.dumps([self.household_id, self.date.isoformat(), self.source, self.kind, self.amount,
                              self.note], ensure_ascii=False)
        return hashlib.sha256(content.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Reject:
    line: int
    raw: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _lines(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, text, why it cannot be read or None); a line that is not UTF-8 is kept, decoded lossily."""
    with open(path, "rb") as handle:
        for number, data in enumerate(handle, start=1):
            if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            try:
                yield number, data.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield number, data.decode("utf-8", errors="replace"), \
                    f"not UTF-8 text (byte {exc.start}) / 不是UTF-8编码"


def raw_records(path: Path, start_line: int = 1) -> Iterator[tuple[int, str, dict | str | None]]:
    """(line number, raw text, record) for each event line of a .jsonl or .csv file; the record is a dict,
    or a text saying why the line cannot be read."""
    csv_file = path.suffix.lower() == ".csv"
    header: list[str] | None = None
    for number, text, problem in _lines(path):
        raw = text.rstrip("\r\n")
        if csv_file and header is None:
            header = _csv_values(raw) if problem is None else []
            continue
        if number < start_line or not text.strip():
            continue
        if problem is None and len(raw) > MAX_LINE:
            problem = f"line longer than {MAX_LINE} characters / 行过长"
        if problem is not None:
            yield number, raw[:MAX_LINE], problem
            continue
        if csv_file:
            values = _csv_values(raw)
            yield number, raw, dict(zip(header or [], values, strict=False)) if values is not None else \
                "not a readable CSV line / 无法读取的CSV行"
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            record = None
        yield number, raw, record if isinstance(record, dict) else None


def _csv_values(text: str) -> list[str] | None:
    try:
        return next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        return None


def validate(number: int, raw: str, record: dict | str | None, known: Iterable[str] | None,
             today: dt.date | None = None, rename: Callable[[str], str] | None = None) -> Event | Reject:
    """An `Event`, or a `Reject` naming what is wrong (unknown household, bad date, negative amount, …)."""
    if isinstance(record, str):
        return Reject(number, raw, record)
    if record is None:
        return Reject(number, raw, "not a JSON object / 不是有效的JSON对象")
    hid = str(record.get("household_id") or "").strip()
    if not hid:
        return Reject(number, raw, "household_id is missing / 缺少户编号")
    if len(hid) > MAX_ID or not hid.isprintable():
        return Reject(number, raw, f"household_id is not a valid id (at most {MAX_ID} printable characters) / "
                                   "户编号无效")
    hid = rename(hid) if rename else hid  # the store keeps identity numbers in their stored form
    if known is not None and hid not in known:
        return Reject(number, raw, f"unknown household {hid} / 户编号不存在")
    text = str(record.get("date", "")).strip()
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        return Reject(number, raw, f"bad date {text[:40]!r} (YYYY-MM-DD) / 日期无效")
    latest = (today or dt.date.today()) + dt.timedelta(days=1)
    if not dt.date(FIRST_YEAR, 1, 1) <= date <= latest:
        return Reject(number, raw, f"date {date} is outside {FIRST_YEAR}-01-01 … {latest} (none in the future) / "
                                   "日期超出范围")
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
            return Reject(number, raw, f"amount {amount_text[:40]!r} is not a number / 金额须为数字")
        if not math.isfinite(amount) or amount > MAX_AMOUNT:
            return Reject(number, raw, f"amount {amount_text[:40]} is out of range (at most {MAX_AMOUNT:g}) / "
                                       "金额超出范围")
        if amount < 0:
            return Reject(number, raw, f"negative amount {amount:g} / 金额不能为负")
    elif kind != "disability_certified":
        return Reject(number, raw, f"{kind} needs an amount / 缺少金额")
    return Event(number, hid, date, source, kind, amount, (str(record.get("note") or "").strip() or None))
