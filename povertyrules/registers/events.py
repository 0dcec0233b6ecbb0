"""Register records as monitoring events (MON-5.1): the records of the 12 months up to a date, matched to
households through their members' 证件号码, in date order, each carrying its evidence sentence."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from povertyrules.monitor.events import Event
from povertyrules.registers.match import RegisterRecords, _evidence, _windows


def register_events(reads: list[RegisterRecords], ids: pd.DataFrame, as_of: dt.date) -> tuple[list[Event], dict]:
    """(events in date order, per register file: records read, matched in the window, matching no household)."""
    index = ids.assign(household_id=ids["household_id"].astype(str)).drop_duplicates()
    events: list[Event] = []
    counts: dict[str, dict[str, int]] = {}
    for read in reads:
        register = read.register
        if register.event is None:
            continue
        recs = read.records.merge(index, left_on=register.id_number, right_on="id_number", how="left",
                                  suffixes=("", "__ids"))
        none = recs["household_id"].isna().to_numpy()
        recs = recs[~none].reset_index(drop=True)
        inside = _windows(register, recs, None, as_of)
        recs = recs[inside].reset_index(drop=True)
        counts[read.file] = {"records": len(read.records), "events": len(recs), "unmatched": int(none.sum()),
                             "outside_window": int((~inside).sum())}
        if not len(recs):
            continue
        notes = _evidence(recs, register, register.event.kind, register.event.clause, read.file)["text"].to_numpy()
        amounts = (recs[register.event.amount].to_numpy(dtype=float) if register.event.amount
                   else np.full(len(recs), np.nan))
        dates = pd.to_datetime(recs[register.date]).dt.date.to_numpy()
        for row, hid, date, amount, note in zip(recs["__row"].to_numpy(), recs["household_id"].to_numpy(), dates,
                                                amounts, notes, strict=True):
            events.append(Event(int(row), str(hid), date, register.event.source, register.event.kind,
                                None if np.isnan(amount) else float(amount), str(note)))
    events.sort(key=lambda e: (e.date, e.household_id, e.line))
    return events, counts
