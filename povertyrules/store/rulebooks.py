"""Which rule book a command over the store uses: the one the run was scored with, or the one asked for.

`monitor`, `confirm`, `procedure` and `explain`'s procedure view never fall back silently to today's shipped
rules: given ``--rules`` / ``--override`` / ``--set`` they use those; otherwise the stored snapshot of the run
in question (the household's latest run, or the latest run); only a store without any run uses the shipped
rules, and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from povertyrules.lang.rulebook import RuleBook
from povertyrules.store.database import stored_form
from povertyrules.store.models import Decision, Run


def rulebook_for(engine: Engine, rules_dir: Path | str | None = None, overrides: list[Path] | None = None,
                 values: dict[str, Any] | None = None, *, run_id: int | None = None,
                 household_id: str | None = None, province: str | None = None) -> tuple[RuleBook, str]:
    """(the rule book, a sentence saying where it comes from): the given rules, or the stored run's own."""
    from povertyrules.scoring import resolve_rules
    from povertyrules.store.explain import snapshot_rulebook

    if rules_dir or overrides or values or province:
        book = resolve_rules(rules_dir, values or None, overrides, province)
        return book, f"rules as given (rules_version {book.version})"
    with Session(engine) as session:
        if run_id is None and household_id is not None:
            run_id = session.execute(select(func.max(Decision.run_id))
                                     .where(Decision.household_id == stored_form(engine, household_id))).scalar()
        if run_id is None:
            run_id = session.execute(select(func.max(Run.id))).scalar()
        run = session.get(Run, run_id) if run_id is not None else None
    if run is None:
        book = resolve_rules(None)
        return book, f"no stored run: the shipped rules (rules_version {book.version})"
    return snapshot_rulebook(run), f"the rules run {run.id} was scored with (rules_version {run.rules_version})"
