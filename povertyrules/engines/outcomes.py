"""How a decision resolves its outcome rules in three-valued logic — one definition every engine reads.

Outcome rules follow Catala: the top-level rules of a decision never apply together, and a rule with
``exception_of`` refines its base where the base applies. Each rule's condition is true, false or unknown.
The *possible outcomes* are those of every way the unknown conditions could fall: where a rule of a level is
true it is the one that applies (rules of a level exclude each other); where none is true, each unknown one may
apply, and at an exception level it may also be that none does (the base's outcome then stands). The decision
is decided where exactly one outcome is possible and ``review`` otherwise, so a blank cell matters only where
it could change the outcome — e.g. a household meeting ID-3 with one 六不评 flag blank and the ID-2.4
hardship route approved is ``poor`` whichever way the flag falls.

The resolution depends only on the states of the decision's own outcome rules, so it is worked out once per
combination of states (``code`` = Σ state·3^i) and shared: the batch engine looks up each row's combination
of its Kleene-ordered verdicts in arrays filled from this table (`engines.vectorized.DecisionPlan`), the row
interpreter looks its one code up, and the durable_rules engine compiles one rule per pattern of combinations.
"""

from __future__ import annotations

from dataclasses import dataclass

from povertyrules.lang.rulebook import Decision, Rule, RuleBook

FALSE, TRUE, UNKNOWN = 0, 1, 2
#: the state of a verdict held in Kleene's order (0 false < 1 unknown < 2 true), as the batch engine holds them
KLEENE_STATES = (FALSE, UNKNOWN, TRUE)
MAX_RULES = 10  # 3^10 combinations: far more outcome rules than any decision needs


@dataclass(frozen=True)
class Resolution:
    """The outcomes possible for one combination of outcome-rule states, and the rules it cites."""

    possible: frozenset[str]
    cited: frozenset[str]  # rules on a possible path: applying, unknown, or exceptions checked and not applying
    conflict: tuple[str, ...] = ()  # two rules of one level both true: a fault in the rule set
    nothing_applies: bool = False  # every top-level rule false: a fault in the rule set

    @property
    def error(self) -> bool:
        return bool(self.conflict) or self.nothing_applies

    @property
    def decided(self) -> str | None:
        return next(iter(self.possible)) if len(self.possible) == 1 and not self.error else None


class OutcomeTable:
    """A decision's outcome rules and the resolution of every combination of their states."""

    def __init__(self, decision: Decision, rules: list[Rule]):
        if len(rules) > MAX_RULES:
            raise ValueError(f"decision '{decision.name}' has more than {MAX_RULES} outcome rules")
        self.decision, self.rules = decision, rules
        self.index = {r.id: i for i, r in enumerate(rules)}
        self.children: dict[str | None, list[Rule]] = {}
        for r in rules:
            self.children.setdefault(r.exception_of, []).append(r)
        self._cache: dict[int, Resolution] = {}

    @property
    def size(self) -> int:
        return 3 ** len(self.rules)

    def states(self, code: int) -> list[int]:
        out = []
        for _ in self.rules:
            code, state = divmod(code, 3)
            out.append(state)
        return out

    def code(self, states: list[int]) -> int:
        return sum(s * 3 ** i for i, s in enumerate(states))

    def resolve(self, code: int) -> Resolution:
        if code not in self._cache:
            self._cache[code] = self._resolve(self.states(code))
        return self._cache[code]

    def _resolve(self, states: list[int]) -> Resolution:
        cited: set[str] = set()
        conflict: list[str] = []

        def level(siblings: list[Rule], exception: bool) -> tuple[set[str], bool]:
            """(outcomes possible below this level, whether possibly no rule of it applies)."""
            true = [r for r in siblings if states[self.index[r.id]] == TRUE]
            unknown = [r for r in siblings if states[self.index[r.id]] == UNKNOWN]
            if len(true) > 1 and not conflict:
                conflict.extend(r.id for r in true)
            candidates = true[:1] or unknown
            cited.update(r.id for r in candidates)
            if exception:  # an exception checked and found not to apply is cited too
                cited.update(r.id for r in siblings if states[self.index[r.id]] == FALSE)
            found: set[str] = set()
            for r in candidates:
                below, none = level(self.children.get(r.id, []), True) if r.id in self.children else (set(), True)
                found |= below | ({r.outcome or ""} if none else set())
            return found, not true

        possible, _ = level(self.children.get(None, []), False)
        return Resolution(frozenset(possible), frozenset(cited), tuple(conflict), not possible)

    def patterns(self) -> list[tuple[dict[int, int], Resolution]]:
        """A cover of every combination by partial ones (rule index -> state; unnamed rules: any state) with
        the same resolution throughout, found by splitting on one rule at a time: what the durable_rules
        engine compiles, one rule each, instead of all 3^k combinations. Combinations that are faults of the
        rule set (two rules of a level true, or no top-level rule) are not told apart: the batch engine and
        the row interpreter raise on them, and the tests check the shipped rules never reach them."""
        found: list[tuple[dict[int, int], Resolution]] = []
        k = len(self.rules)

        def split(fixed: dict[int, int]) -> None:
            free = [j for j in range(k) if j not in fixed]
            results: set[Resolution] = set()
            for combo in range(3 ** len(free)):
                states = dict(fixed)
                for j in free:
                    combo, states[j] = divmod(combo, 3)
                res = self.resolve(self.code([states[j] for j in range(k)]))
                if not res.error:  # a fault of the rule set, which the other engines raise: it fits any pattern
                    results.add(res)
                if len(results) > 1:
                    break
            if len(results) <= 1:
                found.extend((fixed, res) for res in results)
                return
            for state in (FALSE, TRUE, UNKNOWN):
                split({**fixed, free[0]: state})

        split({})
        return found

    def families(self) -> set[frozenset[str]]:
        """Every set of possible outcomes some combination gives (for tests on this decision's value)."""
        return {r.possible for r in map(self.resolve, range(self.size)) if not r.error}


_TABLES: dict[tuple[str, str], OutcomeTable] = {}


def outcome_table(book: RuleBook, name: str) -> OutcomeTable:
    """The decision's table (cached by rule-set version, which hashes every rule)."""
    key = (book.version, name)
    if key not in _TABLES:
        if len(_TABLES) > 256:
            _TABLES.clear()
        decision = book.decisions[name]
        _TABLES[key] = OutcomeTable(decision, [book.rules[rid] for rid in decision.outcomes])
    return _TABLES[key]


def test_values(possible: frozenset[str], accepted: frozenset[str]) -> bool | None:
    """Whether a decision with these possible outcomes is one of `accepted`: True, False, or None (unknown)."""
    if possible <= accepted:
        return True
    if not possible & accepted:
        return False
    return None
