"""Run the OpenFisca port on typed household rows (as `povertyrules.model.records.parse_records` gives them).

One simulation per evaluation year (OpenFisca's period), over every household of that year at once, with
OpenFisca's full tracer on or off. The outcomes come back as the rule files' values (``review`` where the
blanks leave more than one outcome possible), aligned with the input rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from openfisca_core.simulations import SimulationBuilder

from povertyrules.lang.rulebook import REVIEW, RuleBook

from .logic import F, T, U
from .system import DECISIONS, NUMBER_INPUTS, VERDICT_INPUTS, PovertySystem, RegisteredStatus

STATUS_INDEX = {member.name: i for i, member in enumerate(RegisteredStatus)}


@dataclass
class PeerResult:
    """Outcomes per decision (text, aligned with the input rows) and each year's simulation."""

    outcomes: dict[str, np.ndarray]
    simulations: dict[int, object]
    #: every ported rule's verdicts per row, in the project's trace codes (0 false, 1 true, 2 unknown)
    verdicts: dict[str, np.ndarray]


def inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The input arrays of the port: floats with NaN for blanks, verdicts, the registered status's index."""
    out: dict[str, np.ndarray] = {}
    for name in NUMBER_INPUTS:
        if name in frame:
            out[name] = pd.to_numeric(frame[name]).to_numpy(dtype=float, na_value=np.nan)
    for name in VERDICT_INPUTS:
        if name in frame:
            column = frame[name].astype("boolean").array
            data, mask = np.asarray(column._data), np.asarray(column._mask)
            out[name] = np.where(mask, U, np.where(data, T, F))
    if "registered_status" in frame:
        status = frame["registered_status"].astype("category").array
        lookup = np.asarray([STATUS_INDEX[str(c)] for c in status.categories] + [STATUS_INDEX["unknown"]])
        out["registered_status"] = lookup[np.asarray(status.codes)]  # code -1 (blank) → the last entry
    return out


def simulate(system: PovertySystem, arrays: dict[str, np.ndarray], year: int, trace: bool = False):
    """One OpenFisca simulation of `year` for these households; every decision computed."""
    n = len(next(iter(arrays.values())))
    simulation = SimulationBuilder().build_default_simulation(system, n)  # n households, ids 0…n-1
    simulation.trace = trace
    period = str(year)
    for name, array in arrays.items():
        simulation.set_input(name, period, array)
    for decision in DECISIONS:
        simulation.calculate(decision, period)
    return simulation


def run(system: PovertySystem, frame: pd.DataFrame, trace: bool = False, verdicts: bool = False) -> PeerResult:
    """The port's decisions for every row of `frame` (one simulation per year present)."""
    book: RuleBook = system.book
    years = pd.to_numeric(frame["year"]).to_numpy()
    arrays = inputs(frame)
    outcomes = {d: np.empty(len(frame), dtype=object) for d in DECISIONS}
    found: dict[str, np.ndarray] = {}
    simulations = {}
    for year in np.unique(years):
        rows = years == year
        part = {k: v[rows] for k, v in arrays.items()} if not rows.all() else arrays
        simulation = simulate(system, part, int(year), trace)
        simulations[int(year)] = simulation
        period = str(int(year))
        for d in DECISIONS:
            values = np.asarray([*book.decisions[d].values, REVIEW, "(no rule applies)"], dtype=object)
            outcomes[d][rows] = values[simulation.calculate(d, period)]
        if verdicts:
            for name in system.variables:
                if name in book.rules and book.rules[name].kind in ("criterion", "outcome"):
                    codes = np.asarray(simulation.calculate(name, period))
                    found.setdefault(name, np.empty(len(frame), dtype=np.int8))[rows] = \
                        np.choose(codes, [0, 2, 1])  # Kleene order F, U, T → trace codes 0, 2, 1
    return PeerResult(outcomes, simulations, found)
