"""“What would change the outcome”, in the reader's language: only conditions about the household a person
could verify or change (income, a score, a yes/no situation), each with today's value and the value that flips
it; never a policy parameter or the mechanism being in force, never a comparison with an unknown threshold.
Where nothing about the household changes a decision, it says so. Words and units come from
`rules/explain/quantities.yaml`, statuses from the rule files, column names from the contract.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from povertyrules.lang.rulebook import RuleBook
from povertyrules.lang.safeyaml import load as load_yaml
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.shipped import rules_folder

QUANTITIES = rules_folder() / "explain" / "quantities.yaml"  # the checkout's, else the installed package's
DECISIONS = ("identification", "exit", "monitoring")


@cache
def vocabulary() -> dict[str, Any]:
    return load_yaml(QUANTITIES)


def number(value: Any) -> str:
    """A number as people write it: thousands separated, no trailing ``.0`` (``2,928``, ``1.5``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _name(name: str, lang: str) -> tuple[str, str]:
    """(label, unit) of a household value."""
    known = vocabulary()["quantities"].get(name)
    if known:
        return known[lang], known["unit"][lang]
    contract = {c.name: c.zh for c in HOUSEHOLD_COLUMNS}
    if lang == "zh":
        return contract.get(name, name), ""
    return (vocabulary().get("english_names") or {}).get(name, name.replace("_", " ")), ""


def label_of(name: str, lang: str) -> str:
    """A household value's name as a reader of `lang` says it (its label, without the unit)."""
    return _name(name, lang)[0]


def missing_names(book: RuleBook, missing: str | None, lang: str) -> str:
    """The `missing_columns` of a decision (``a;b``) as a reader names them: the contract's Chinese headers, a
    parameter's description."""
    if not missing:
        return ""
    parameters = book.parameters
    names = []
    for name in missing.split(";"):
        if name in parameters:
            names.append(getattr(parameters[name].description, lang))
        else:
            names.append(_name(name, lang)[0])
    return ("、" if lang == "zh" else ", ").join(names)


def decision_name(decision: str, lang: str) -> str:
    from povertyrules.decisions.files import labels

    return labels()["columns"].get(decision, decision) if lang == "zh" else decision.replace("_", " ")


def _compare(x: dict[str, Any], lang: str) -> str | None:
    """A comparison as a reader says it, or None where its threshold is unknown or its subject is no value a
    reader would recognise."""
    words = vocabulary()["words"][lang]
    if x["threshold"] is None or not isinstance(x["threshold"], int | float) or x["subject"] not in {
            *vocabulary()["quantities"], *(col.name for col in HOUSEHOLD_COLUMNS)}:
        return None
    label, unit = _name(x["subject"], lang)
    unit = f" {unit}" if unit else ""
    text = words["compare"].format(label=label, op=words["ops"][x["op"]], threshold=number(x["threshold"]),
                                   unit=unit, now=words["blank"] if x["now"] is None else number(x["now"]))
    return text.replace(f"{words['blank']}{unit}", words["blank"])


def _condition(book: RuleBook, c: dict[str, Any], lang: str) -> str | None:
    """A flipped condition about the household in the reader's words (None for one that is not about it):
    its comparisons or yes/no answers where it has them, else the rule's own description, held or not."""
    if not c.get("household"):
        return None
    text = _structured(c, lang)
    if text:
        return text
    words = vocabulary()["words"][lang]
    rule = book.rules.get(c["name"])
    label = getattr(rule.description, lang) if rule else _name(c["name"], lang)[0]
    return words["rule_holds" if c["becomes"] else "rule_fails"].format(rule=label)


def _structured(c: dict[str, Any], lang: str) -> str | None:
    words = vocabulary()["words"][lang]
    if "compare" in c:
        return _compare(c["compare"], lang)
    if "parts" in c:
        texts = [_structured(part, lang) for part in c["parts"]["items"]]
        if None in texts:
            return None
        return words["all_of" if c["parts"]["all"] else "any_of"].join(t for t in texts if t)
    if "flags" in c:
        x = c["flags"]
        answer = {True: words["yes"], False: words["no"], None: words["blank"]}
        if len(x["columns"]) == 1:
            return words["flag"].format(label=_name(x["columns"][0], lang)[0], value=answer[x["values"][0]],
                                        now=answer[x["now"][0]])
        return words["all_of" if x["all"] else "any_of"].join(
            words["item"].format(label=_name(col, lang)[0], value=answer[v])
            for col, v in zip(x["columns"], x["values"], strict=True))
    return None


def readable_changes(book: RuleBook, explanation: dict[str, Any], lang: str = "zh") -> list[dict[str, str]]:
    """One line per change that a household fact could bring about, then one per decision none can change."""
    words = vocabulary()["words"][lang]
    lines: list[dict[str, str]] = []
    seen: set[str] = set()
    for change in explanation["what_would_change"]:
        parts = [_condition(book, c, lang) for c in change["conditions"]]
        if not parts or None in parts:
            continue
        decision = change["decision"]
        text = words["change"].format(conditions=words["and"].join(parts), decision=decision_name(decision, lang),
                                      outcome=book.decisions[decision].label(change["outcome"], lang))
        if text not in seen:
            seen.add(text)
            lines.append({"decision": decision, "text": text})
    changed = {line["decision"] for line in lines}
    for decision in DECISIONS:
        if decision not in changed:
            outcome = explanation["decision"][decision] or ""
            lines.append({"decision": decision, "text": words["nothing"].format(
                decision=decision_name(decision, lang), outcome=book.decisions[decision].label(outcome, lang))})
    return lines
