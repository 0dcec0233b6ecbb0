"""`rules check`: every cited clause exists in the shipped policy text, every required parameter has a value
for every year asked. (Expressions, names, types and links are already checked when a rule set loads.)"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    for name, parameter in sorted(book.parameters.items()):
        lacking = [y for y in years if parameter.at(y) is None]
        if lacking and parameter.required:
            report.problems.append(f"parameter {name} has no value in force for year(s) {_span(lacking)}")
        elif lacking:
            report.notes.append(f"parameter {name} (optional) has no value for {_span(lacking)}")
    return report


def _span(years: list[int]) -> str:
    return ", ".join(map(str, years)) if len(years) < 4 else f"{years[0]}…{years[-1]} ({len(years)} years)"
