"""`rules check`: every cited clause exists in the shipped policy text, every required parameter has a value
for every year asked. (Expressions, names, types and links are already checked when a rule set loads.)"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from povertyrules.errors import MissingParameters
from povertyrules.lang.clauses import clauses
from povertyrules.lang.rulebook import RuleBook

DEFAULT_YEARS = range(2014, 2021)  # 建档立卡 years with a national line


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_rulebook(book: RuleBook, years: range | list[int] = DEFAULT_YEARS) -> CheckReport:
    report = CheckReport()
    known = clauses()
    citations = [(f"rule {r.id}", c) for r in book.rules.values() for c in r.clauses]
    citations += [(f"parameter {p.name}", c) for p in book.parameters.values() for c in p.clause]
    citations += [("not_encoded", n.clause) for n in book.not_encoded]
    for where, clause in citations:
        if clause not in known:
            report.problems.append(f"{where} cites clause '{clause}', which is not in the shipped policy text")
    missing = missing_parameters(book, years)
    for name, parameter in sorted(book.parameters.items()):
        lacking = [y for y in years if parameter.at(y) is None]
        if name in missing:
            report.problems.append(f"parameter {name} has no value in force for year(s) {_span(missing[name])}")
        elif lacking:
            report.notes.append(f"parameter {name} (optional) has no value for {_span(lacking)}")
    return report


def missing_parameters(book: RuleBook, years: Iterable[int]) -> dict[str, list[int]]:
    """Required parameters with no value in force for some of `years`: parameter -> those years."""
    years = sorted({int(y) for y in years})
    found = {name: [y for y in years if p.at(y) is None and p.required_at(y)]
             for name, p in sorted(book.parameters.items())}
    return {name: lacking for name, lacking in found.items() if lacking}


def require_parameters(book: RuleBook, years: Iterable[int]) -> None:
    """Stop (`MissingParameters`) where a required parameter has no value for a year to be decided."""
    missing = missing_parameters(book, years)
    if missing:
        labels = {n: (book.parameters[n].description.zh, book.parameters[n].description.en) for n in missing}
        raise MissingParameters(missing, labels)


def _span(years: list[int]) -> str:
    return ", ".join(map(str, years)) if len(years) < 4 else f"{years[0]}…{years[-1]} ({len(years)} years)"
