"""The policy clauses the rules cite, read from the copies shipped in ``povertyrules/policy/``.

The copies are word for word the texts in ``shared/policy/`` (a test checks this); clause ids are written in
square brackets before each clause, e.g. ``[ID-2.3.4]``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

CLAUSE = re.compile(r"^\s*\[((?:ID|EX|MON)-[A-Z]?[\d.]*\d)\]\s*(.+?)\s*$")
POLICY_FILES = ("identification-and-exit.md", "return-to-poverty-monitoring.md")


@cache
def clauses() -> dict[str, str]:
    """Clause id -> its text, word for word."""
    found: dict[str, str] = {}
    for name in POLICY_FILES:
        text = resources.files("povertyrules.policy").joinpath(name).read_text(encoding="utf-8")
        for line in text.splitlines():
            match = CLAUSE.match(line)
            if match:
                found[match.group(1)] = match.group(2)
    return found
