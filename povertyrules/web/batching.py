"""Explanations for concurrent readers, worked out together.

Explaining one stored household costs a fixed overhead (building a frame, evaluating the rule set, the
counterfactual batches) that hardly grows with the number of households explained at once. So requests that
arrive together are queued, and one worker thread explains all that are waiting in one batch
(`povertyrules.store.explain.explain_many`): 50 readers opening 50 households cost about what one costs, not
50 times as much. A stored decision never changes, so each explanation is kept (up to `CACHE` of them).
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from povertyrules.store.explain import explain_decisions
from povertyrules.store.models import Decision
from povertyrules.store.runs import get_run

BATCH = 64  # households explained together at most
CACHE = 4096  # explanations kept
WAIT = 60.0  # seconds a request waits for its explanation


class Explainer:
    """`explained(decision_id)`: the stored decision's explanation as a dict, from the cache or a batch."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.pending: dict[int, Future] = {}
        self.queue: queue.Queue[int] = queue.Queue()
        self.lock = threading.Lock()
        self.worker: threading.Thread | None = None

    def explained(self, decision_id: int) -> dict[str, Any]:
        with self.lock:
            if decision_id in self.cache:
                self.cache.move_to_end(decision_id)
                return self.cache[decision_id]
            future = self.pending.get(decision_id)
            if future is None:
                future = self.pending[decision_id] = Future()
                self.queue.put(decision_id)
            if self.worker is None or not self.worker.is_alive():
                self.worker = threading.Thread(target=self._work, name="explainer", daemon=True)
                self.worker.start()
        return future.result(timeout=WAIT)

    def _work(self) -> None:
        while True:
            ids = [self.queue.get()]
            while len(ids) < BATCH:
                try:
                    ids.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._explain(ids)

    def _explain(self, ids: list[int]) -> None:
        try:
            with Session(self.engine) as session:
                decisions = list(session.execute(select(Decision).where(Decision.id.in_(ids))).scalars())
            by_run: dict[int, list[Decision]] = {}
            for d in decisions:
                by_run.setdefault(int(d.run_id), []).append(d)
            done: dict[int, dict[str, Any]] = {}
            for run_id, group in by_run.items():
                explanations = explain_decisions(get_run(self.engine, run_id), group)
                done.update({int(d.id): explanations[d.household_id].to_dict() for d in group})
        except Exception as exc:  # every waiting reader gets the error (the server answers 500, logged)
            self._finish(ids, {}, exc)
            return
        self._finish(ids, done, None)

    def _finish(self, ids: list[int], done: dict[int, dict[str, Any]], error: Exception | None) -> None:
        with self.lock:
            for i in ids:
                future = self.pending.pop(i, None)
                if i in done:
                    self.cache[i] = done[i]
                    while len(self.cache) > CACHE:
                        self.cache.popitem(last=False)
                if future is None:
                    continue
                if i in done:
                    future.set_result(done[i])
                else:
                    future.set_exception(error or LookupError(f"decision {i} is not in the store"))
