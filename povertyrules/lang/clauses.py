"""The policy clauses the rules cite, read from the copies shipped in ``povertyrules/policy/``.

The copies are word for word the texts in ``shared/policy/`` (a test checks this); clause ids are written in
square brackets before each clause, e.g. ``[ID-2.3.4]``. The facts of the regime from 2021 are a table
(``| M21-4 | fact | source | confidence |``); a fact's text is its second cell.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

CLAUSE = re.compile(r"^\s*\[((?:ID|EX|MON)-[A-Z]?[\d.]*\d)\]\s*(.+?)\s*$")
FACT = re.compile(r"^\|\s*(M21-\d+[a-z]?)\s*\|\s*(.+?)\s*\|")
POLICY_FILES = ("identification-and-exit.md", "return-to-poverty-monitoring.md", "monitoring-2021.md")


@cache
def clauses() -> dict[str, str]:
    """Clause id -> its text, word for word."""
    found: dict[str, str] = {}
    for name in POLICY_FILES:
        text = resources.files("povertyrules.policy").joinpath(name).read_text(encoding="utf-8")
        for line in text.splitlines():
            match = CLAUSE.match(line) or FACT.match(line)
            if match:
                found[match.group(1)] = match.group(2)
    return found
