"""Three-valued logic and Catala-style outcome resolution as the port's own numpy helpers.

OpenFisca has no notion of an unknown value: a boolean variable is true or false. The port therefore holds
every condition as an integer *verdict* (int32, OpenFisca's integer type, so nothing is cast on the way in)
in Kleene's order — ``F`` (0) < ``U`` (1, unknown) < ``T`` (2) — so ``and`` is the minimum, ``or`` the
maximum and ``not`` is ``2 - x``. Numbers are floats with NaN for a blank cell (or a parameter with no value
in force); a comparison with a NaN side is unknown.

`resolve` is the port's reading of the decisions' exceptions (the same semantics as the project's
``engines/outcomes.py``, written again here vectorised, not imported): a rule of a level that holds is the one
that applies; where none holds, each unknown one may apply, and at an exception level possibly none does
(the base's outcome then stands). The result is a bit mask of the possible outcomes per household.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

F, U, T = np.int32(0), np.int32(1), np.int32(2)


def verdict(values: np.ndarray, known: np.ndarray | bool = True) -> np.ndarray:
    """A boolean array as verdicts, unknown where not `known`."""
    return np.where(known, np.where(values, T, F), U)


def compare(op, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """``a op b`` as verdicts (unknown where either side is NaN)."""
    with np.errstate(invalid="ignore"):
        return verdict(op(a, b), ~(np.isnan(a) | np.isnan(b)))


def and_(*verdicts: np.ndarray) -> np.ndarray:
    out = verdicts[0]
    for v in verdicts[1:]:
        out = np.minimum(out, v)
    return out


def or_(*verdicts: np.ndarray) -> np.ndarray:
    out = verdicts[0]
    for v in verdicts[1:]:
        out = np.maximum(out, v)
    return out


def not_(v: np.ndarray) -> np.ndarray:
    return T - v


def known(a: np.ndarray | float) -> np.ndarray:
    """``x is known``: always a known verdict."""
    return verdict(~np.isnan(a))


def divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where either is NaN or b is 0 (a blank or zero household size gives no per-capita figure)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1), np.nan)


def coalesce(*values: np.ndarray | float) -> np.ndarray:
    out = values[-1]
    for v in reversed(values[:-1]):
        out = np.where(np.isnan(v), out, v)
    return out


@dataclass
class Rule:
    """An outcome rule for `resolve`: its verdicts, the bit of its outcome, and its exceptions."""

    verdicts: np.ndarray
    outcome: int
    exceptions: list[Rule] = field(default_factory=list)


def _level(siblings: list[Rule]) -> tuple[np.ndarray, np.ndarray]:
    """(possible outcomes below this level, whether possibly no rule of it applies)."""
    holds = np.zeros(len(siblings[0].verdicts), dtype=bool)
    from_true = np.zeros(len(holds), dtype=np.int32)
    from_unknown = np.zeros(len(holds), dtype=np.int32)
    for rule in siblings:
        if rule.exceptions:
            below, none = _level(rule.exceptions)
            reach = below | np.where(none, np.int32(rule.outcome), np.int32(0))
        else:
            reach = rule.outcome
        is_true = rule.verdicts == T
        holds |= is_true
        from_true |= np.where(is_true, reach, np.int32(0))
        from_unknown |= np.where(rule.verdicts == U, reach, np.int32(0))
    return np.where(holds, from_true, from_unknown), ~holds


def resolve(top: list[Rule]) -> np.ndarray:
    """The bit mask of possible outcomes per household (0 where no rule applies: a fault of the rules)."""
    return _level(top)[0]


def decided(possible: np.ndarray, outcomes: int) -> np.ndarray:
    """The index of the one possible outcome, `outcomes` (review) where several are possible, -1 where none."""
    table = np.full(1 << outcomes, outcomes, dtype=np.int32)
    table[0] = -1
    for i in range(outcomes):
        table[1 << i] = i
    return table[possible]


def is_outcome(possible: np.ndarray, bits: int) -> np.ndarray:
    """``decision in [outcomes]`` as verdicts: unknown where an outcome inside and one outside are possible."""
    inside, outside = (possible & ~bits) == 0, (possible & bits) == 0
    return verdict(inside, inside | outside)
