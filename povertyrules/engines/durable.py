"""The durable_rules engine, compiled from the same rule tree as the batch engine.

Each household is one fact holding its inputs, the parameters in force for its year and its definitions
(arithmetic such as per-capita income, computed by the row interpreter from the same tree). Every criterion,
and every outcome rule's condition, becomes durable rules — one whose condition holds exactly when it is
true and one when false, in Kleene's logic with ``$ex`` guards for known values — and a third rule, of lower
priority, that settles it as unknown once everything it names is settled and neither of the first two fired.
A decision becomes one rule per pattern of its outcome rules' states (`povertyrules.engines.outcomes`,
the table every engine reads), setting the possible outcomes and, where only one is possible, the outcome.
A firing rule adds its result to the fact and re-asserts it, so rules that need that result can fire next.
The rules are cut into stages, one ruleset each (`DurableEngine._stages`); a household's fact runs through
them in order, each stage's final fact asserted into the next.

durable_rules 2.0.28 keeps ruleset names per process and swallows exceptions raised in actions: every engine
gets a unique ruleset name, and action errors are collected and raised after each fact. Its `Host` also runs
a timer thread that dispatches pending actions every 0.2 s, racing the thread that asserts a fact: now and
then an action ran there after `assert_fact` had returned, and the fact read back lacked a result (a flaky
``review``). `SyncHost` runs no such thread: every action runs inside `assert_fact`.
"""

from __future__ import annotations

import itertools
from typing import Any

from durable import engine as durable

from povertyrules.engines.outcomes import UNKNOWN, outcome_table, test_values
from povertyrules.engines.scalar import evaluate_row, outcome_text, parameters_for
from povertyrules.errors import RuleError
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import Rule, RuleBook

Condition = dict[str, Any]
_NAMES = itertools.count()
_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_ARITH = {"+": "$add", "-": "$sub", "*": "$mul", "/": "$div"}
HOUSEHOLD = {"$ex": {"hid": 1}}  # every rule matches household facts only
ALWAYS = {"$ex": {"hid": 1}}
NEVER = {"$nex": {"hid": 1}}
UNSETTLED = "?"  # the value a rule's field takes on the fact when the rule is unknown
STAGE_CRITERIA = 8  # criteria per ruleset at most (see `DurableEngine._stages`)
FALLBACK = 1  # durable_rules priority of the rules that settle a value as unknown (the others have 0: first)


class SyncHost(durable.Host):
    """A durable_rules host without its background dispatch thread (see the module docstring)."""

    def _run(self) -> None:  # the stock host starts timer threads here; facts here need no timers
        return None


def possible_field(name: str) -> str:
    """The fact field holding a decision's possible outcomes, ``|``-joined."""
    return f"{name}__possible"


def _joined(possible: frozenset[str]) -> str:
    return "|".join(sorted(possible))


class DurableEngine:
    """Decide households one fact at a time through a durable_rules ruleset compiled from a `RuleBook`."""

    def __init__(self, book: RuleBook):
        self.book = book
        self.name = f"povertyrules_{next(_NAMES)}_{book.version}"
        self.host = SyncHost()
        self._errors: list[str] = []
        self.outputs = [r.id for r in book.rules.values() if r.entity == "household" and r.kind == "criterion"]
        self.outputs += [d for d, v in book.decisions.items() if v.entity == "household"]
        stages = {f"{self.name}_{i}": self._compile(names) for i, names in enumerate(self._stages())}
        self.stages = list(stages)  # ruleset names, in the order a fact runs through them
        self.host.register_rulesets(stages)

    # -- compiling ---------------------------------------------------------------------------------
    def _stages(self) -> list[list[str]]:
        """The household order cut into consecutive stages, one ruleset each: every decision alone, the
        criteria between decisions in runs of at most `STAGE_CRITERIA`. A stage's rules name only what its
        own or an earlier stage settles (the order is topological), so the fact read back from one stage is
        asserted into the next. Why not one ruleset: durable_rules 2.0.28 walks its alpha network depth first
        (`handleAlpha` in events.c) keeping every matching successor still to visit on a fixed stack of
        `MAX_STACK_SIZE` = 64 entries, and fails the assert with error 303 (`ERR_MAX_STACK_SIZE`) past that.
        Every rule here starts with the household test, so that one node's successors are the first tests of
        every rule of the ruleset, and each ``$or`` branch that matches pushes its join node once more. With
        every rule in one ruleset some facts needed 65 entries; a stage needs about 20."""
        stages: list[list[str]] = []
        criteria: list[str] = []
        for name in self.book.order["household"]:
            if name in self.book.decisions:
                stages += [criteria, [name]] if criteria else [[name]]
                criteria = []
            elif self.book.rules[name].kind == "criterion":
                if len(criteria) == STAGE_CRITERIA:
                    stages.append(criteria)
                    criteria = []
                criteria.append(name)
        return [*stages, criteria] if criteria else stages

    def _compile(self, names: list[str]) -> dict[str, Any]:
        # durable_rules drops a fact that no rule accepts; this rule accepts every household fact and never
        # fires (its second fact never exists), so a household's final fact stays readable.
        rules: dict[str, Any] = {"keep": {"all": [{"m": HOUSEHOLD}, {"never": {"$ex": {"__never__": 1}}}],
                                          "run": lambda c: None}}
        for name in names:
            if name in self.book.decisions:
                rules.update(self._decision_rules(name))
            elif self.book.rules[name].kind == "criterion":
                rules.update(self._settle(self.book.rules[name]))
        return rules

    def _settle(self, rule: Rule) -> dict[str, Any]:
        """Rules setting `rule`'s value on the fact: True or False where its condition is known; UNSETTLED by a
        rule of lower priority that waits until everything the rule names is settled and fires only if
        neither of the first two did (nothing learnt later can change a value settled that way)."""
        rules = {}
        for value in (True, False):
            rules[f"{rule.id}__{str(value).lower()}"] = {
                "all": [{"m": {"$and": [HOUSEHOLD, self.condition(rule, rule.expr, value), {"$nex": {rule.id: 1}}]}}],
                "run": self._setter({rule.id: value})}
        waits = [{"$ex": {possible_field(n) if n in self.book.decisions else n: 1}}
                 for n in ex.names(rule.expr) if self.book.kind_of("household", n) in ("criterion", "decision")]
        rules[f"{rule.id}__unknown"] = {
            "pri": FALLBACK, "all": [{"m": {"$and": [HOUSEHOLD, *waits, {"$nex": {rule.id: 1}}]}}],
            "run": self._setter({rule.id: UNSETTLED})}
        return rules

    def _decision_rules(self, name: str) -> dict[str, Any]:
        table = outcome_table(self.book, name)
        rules: dict[str, Any] = {}
        for rule in table.rules:
            rules.update(self._settle(rule))
        for number, (fixed, res) in enumerate(table.patterns()):
            parts = [{table.rules[i].id: (UNSETTLED if s == UNKNOWN else bool(s))} for i, s in fixed.items()]
            result = {possible_field(name): _joined(res.possible)}
            if res.decided is not None:
                result[name] = res.decided
            rules[f"{name}__{number}"] = {
                "all": [{"m": {"$and": [HOUSEHOLD, *parts, {"$nex": {possible_field(name): 1}}]}}],
                "run": self._setter(result)}
        return rules

    def _setter(self, values: dict[str, Any]):
        def action(c) -> None:
            try:
                fact = dict(c.m._d)
                c.retract_fact(fact)
                fact.pop("sid", None)
                fact.update(values)
                c.assert_fact(fact)
            except durable.MessageNotHandledException:
                pass
            except Exception as exc:  # durable_rules would swallow it
                self._errors.append(f"{sorted(values)}: {exc!r}")
        return action

    def condition(self, rule: Rule, node: ex.Node, value: bool) -> Condition:
        return compile_condition(self.book, rule, node, value)

    def fact(self, row: dict[str, Any], hid: str) -> dict[str, Any]:
        return household_fact(self.book, row, hid)

    def decide(self, row: dict[str, Any], hid: str = "h") -> dict[str, Any]:
        """Every criterion (True/False/None) and decision (text; ``review`` when unsettled) for one household."""
        self._errors.clear()
        final: dict[str, Any] = self.fact(row, hid)
        for stage in self.stages:
            try:
                state = self.host.assert_fact(stage, final)
            except durable.MessageNotHandledException:
                state = {}
            if isinstance(state, dict) and state.get("exception"):
                self._errors.append(state["exception"])
            read = next((f for f in self.host.get_facts(stage) if f.get("hid") == hid), None)
            if read is not None:
                self.host.retract_fact(stage, read)
            if self._errors:
                raise RuleError(f"durable_rules action failed: {'; '.join(self._errors)}")
            if read is None:
                raise RuleError(f"durable_rules lost household {hid} in ruleset {stage}")
            final = {k: v for k, v in read.items() if k != "sid"}
        result: dict[str, Any] = {}
        for name in self.outputs:
            value = final.get(name)
            if name in self.book.decisions:
                result[name] = outcome_text(value)
            else:
                result[name] = None if value == UNSETTLED else value
        return result

    def decide_many(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.decide(row, f"h{i}") for i, row in enumerate(rows)]

    def triggers(self, decided: dict[str, Any]) -> str:
        """The monitoring triggers, as the batch engine reports them."""
        reported = decided["monitoring"] in self.book.decisions["monitoring"].report_triggers_for
        return ";".join(t for t, r in self.book.triggers().items() if reported and decided[r.id] is True)


def compile_condition(book: RuleBook, rule: Rule, node: ex.Node, value: bool) -> Condition:
    """A durable condition that holds exactly when `node` is known and equals `value` (Kleene's logic)."""
    return _Compiler(book).condition(rule, node, value)


class _Compiler:
    def __init__(self, book: RuleBook):
        self.book = book

    def condition(self, rule: Rule, node: ex.Node, value: bool) -> Condition:
        """A durable condition that holds exactly when `node` is known and equals `value` (Kleene's logic).

        Fields a rule sets (criteria, decisions) are matched on their settled value, never on their absence,
        so a condition cannot hold on a fact that later rules would complete."""
        def fail(why: str) -> RuleError:
            return RuleError(f"cannot compile to durable_rules: {why}", file=rule.file, rule=rule.id,
                             position=node.pos)

        def settled(name: str) -> bool:
            return self.book.kind_of("household", name) in ("criterion", "decision")

        match node:
            case ex.Const(value=bool() as v):
                return ALWAYS if v == value else NEVER
            case ex.Name(name=name):
                return {name: value}
            case ex.Not(operand=o):
                return self.condition(rule, o, not value)
            case ex.Logic(op=op, operands=ops):
                parts = [self.condition(rule, o, value) for o in ops]
                combine = "$and" if (op == "and") == value else "$or"
                return {combine: parts}
            case ex.Known(operand=ex.Name(name=name), negate=negate):
                if settled(name):
                    raise fail(f"'{name} is known' tests a derived value, which is not monotone")
                return {("$ex" if value != negate else "$nex"): {name: 1}}
            case ex.In(operand=ex.Name(name=name), values=values, negate=negate) if name in self.book.decisions:
                return self._decision_test(name, frozenset(values), negate, value)
            case ex.Compare(op="==" | "!=" as op, left=ex.Name(name=name), right=ex.Const(value=v)) \
                    if name in self.book.decisions:
                return self._decision_test(name, frozenset({v}), op == "!=", value)
            case ex.Compare(op="==" | "!=" as op, left=ex.Const(value=v), right=ex.Name(name=name)) \
                    if name in self.book.decisions:
                return self._decision_test(name, frozenset({v}), op == "!=", value)
            case ex.In(operand=ex.Name(name=name), values=values, negate=negate):
                hit = value != negate
                parts = [({name: v} if hit else {"$neq": {name: v}}) for v in values]
                return {"$and": [{"$ex": {name: 1}}, {"$or" if hit else "$and": parts}]}
            case ex.Compare(op=op, left=left, right=right):
                fields = self._fields(node)
                if any(settled(f) for f in fields):
                    raise fail("a comparison may name inputs, parameters and definitions only")
                if not isinstance(left, ex.Name):
                    if not isinstance(right, ex.Name):
                        raise fail("a comparison needs a plain name on one side")
                    left, right, op = right, left, _FLIP[op]
                op = op if value else _NEGATE[op]
                guards = [{"$ex": {n: 1}} for n in fields]
                operand = self._operand(rule, right)
                test = {left.name: operand} if op == "==" else {_OPS[op]: {left.name: operand}}
                return {"$and": [*guards, test]}
        raise fail(f"{type(node).__name__} is not supported in a durable_rules condition")

    def _decision_test(self, name: str, accepted: frozenset[str], negate: bool, value: bool) -> Condition:
        """``name in accepted`` (negated) is `value`: the decision's possible outcomes, settled on the fact,
        are one of the sets for which the test has that value."""
        def verdict(possible: frozenset[str]) -> bool | None:
            found = test_values(possible, accepted)
            return found if found is None or not negate else not found

        sets = sorted(_joined(p) for p in outcome_table(self.book, name).families() if verdict(p) == value)
        return {"$or": [{possible_field(name): s} for s in sets]} if sets else NEVER

    def _operand(self, rule: Rule, node: ex.Node) -> Any:
        match node:
            case ex.Const(value=v):
                return v
            case ex.Name(name=name):
                return {"$m": name}
            case ex.Call(function="last_year", args=(ex.Name(name=name),)):
                return {"$m": f"last_year__{name}"}
            case ex.Arith(op=op, left=a, right=b) if op != "/":
                return {_ARITH[op]: {"$l": self._operand(rule, a), "$r": self._operand(rule, b)}}
            case ex.Neg(operand=o):
                return {"$mul": {"$l": -1, "$r": self._operand(rule, o)}}
        raise RuleError(f"cannot compile {ex.render(node)} to a durable_rules operand", file=rule.file, rule=rule.id)

    def _fields(self, node: ex.Node) -> list[str]:
        fields = []
        for n in ex.walk(node):
            if isinstance(n, ex.Call) and n.function == "last_year":
                fields.append(f"last_year__{n.args[0].name}")  # type: ignore[union-attr]
            elif isinstance(n, ex.Name) and not any(
                    isinstance(c, ex.Call) and c.function == "last_year" and n in c.args for c in ex.walk(node)):
                fields.append(n.name)
        return list(dict.fromkeys(fields))


def household_fact(book: RuleBook, row: dict[str, Any], hid: str) -> dict[str, Any]:
    """A household's fact: known inputs, parameters in force, last year's parameters, definitions."""
    values = evaluate_row(book, row, definitions_only=True)
    fact: dict[str, Any] = {"hid": hid}
    for name, value in values.items():
        if value is not None:
            fact[name] = value
    for name, value in parameters_for(book, int(row["year"]) - 1).items():
        if value is not None:
            fact[f"last_year__{name}"] = value
    return fact


class DurableTriggers:
    """A lean durable_rules ruleset of chosen criteria, fed one household snapshot at a time.

    Each criterion compiles to one rule whose condition holds exactly when the criterion is true. A snapshot
    is asserted as a fact (an event would be consumed by the first rule it matches, so a second true criterion
    would not fire), the rules that fire are read off, and the fact is retracted. Criteria that name other
    criteria are not supported here (no chaining), which holds for the monitoring triggers.
    """

    def __init__(self, book: RuleBook, criteria: list[str]):
        self.book, self.criteria = book, criteria
        self.name = f"povertyrules_triggers_{next(_NAMES)}_{book.version}"
        self.host = SyncHost()
        self._fired: list[str] = []
        rules: dict[str, Any] = {}
        for name in criteria:
            rule = book.rules[name]
            if any(book.kind_of("household", n) == "criterion" for n in ex.names(rule.expr)):
                raise RuleError("a trigger ruleset cannot chain criteria", file=rule.file, rule=name)
            rules[name] = {"all": [{"m": {"$and": [HOUSEHOLD, compile_condition(book, rule, rule.expr, True)]}}],
                           "run": self._record(name)}
        rules["keep"] = {"all": [{"m": HOUSEHOLD}, {"never": {"$ex": {"__never__": 1}}}], "run": lambda c: None}
        self.host.register_rulesets({self.name: rules})
        compiler = _Compiler(book)
        self.fields = {"hid", *(f for name in criteria for f in compiler._fields(book.rules[name].expr))}

    def _record(self, name: str):
        def action(c) -> None:
            self._fired.append(name)
        return action

    def fired(self, snapshot: dict[str, Any]) -> list[str]:
        """The criteria true for this snapshot (a `household_fact`), in the order given."""
        self._fired.clear()
        fact = {k: v for k, v in snapshot.items() if k in self.fields}  # a small fact serialises fast
        state = self.host.assert_fact(self.name, fact)
        self.host.retract_fact(self.name, fact)
        if isinstance(state, dict) and state.get("exception"):
            raise RuleError(f"durable_rules action failed: {state['exception']}")
        return [c for c in self.criteria if c in self._fired]
