"""A decision as a trace: the verdict of every criterion and outcome rule, as compact codes.

Per household the trace holds one code per rule of `trace_rules(book)` — 0 false, 1 true, 2 unknown —
packed two bits a rule, two rules a hexadecimal digit (a 40-rule set takes 20 characters). With the run's
rule snapshot and the household's input row it is enough to render every reason again, in any language;
the outcomes themselves follow from the outcome rules' codes through the decision's outcome table
(`povertyrules.engines.outcomes`).

The main reason and the clause ids of the decisive path depend only on the states of a decision's outcome
rules, so they are rendered once per combination present and looked up for every row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from povertyrules.engines.outcomes import FALSE, TRUE, UNKNOWN, outcome_table
from povertyrules.engines.vectorized import Evaluation, kleene_state
from povertyrules.lang.rulebook import RuleBook

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
VERDICTS = {FALSE: "false", TRUE: "true", UNKNOWN: "unknown"}


def trace_rules(book: RuleBook) -> list[str]:
    """The rules a household's trace holds, in rule-file order: its criteria and outcome rules."""
    return [r.id for r in book.rules.values() if r.entity == "household" and r.kind in ("criterion", "outcome")]


def codes(result: Evaluation, rules: list[str]) -> np.ndarray:
    """The trace as an int8 matrix (rows × rules): 0 false, 1 true, 2 unknown (as `decode` gives it)."""
    out = np.empty((result.n, len(rules)), dtype=np.int8)
    for j, rule in enumerate(rules):
        out[:, j] = result.verdict(rule)
    return out


def pack(result: Evaluation, rules: list[str]) -> pa.Array:
    """The packed trace of every row, as an Arrow string array: two bits a rule, two rules a hexadecimal digit.

    Made straight from the engine's Kleene verdicts by byte arithmetic (no look-up), into the bytes of an Arrow
    string array (each row `digits` characters long, no per-row object); `decode` reads it back."""
    n, digits = result.n, -(-len(rules) // 2)
    chars = np.empty((n, digits), dtype=np.uint8)  # row by row: the buffer of the strings
    for p in range(digits):
        digit = kleene_state(result.value(rules[2 * p]).kleene).view(np.uint8)
        if 2 * p + 1 < len(rules):
            digit += kleene_state(result.value(rules[2 * p + 1]).kleene).view(np.uint8) * np.uint8(4)
        digit += np.asarray(digit > 9).view(np.uint8) * np.uint8(39)
        digit += 48  # 0-9 → '0'-'9', 10 → 'a'
        chars[:, p] = digit  # one strided write a column (faster than transposing a digits × rows matrix)
    offsets = np.arange(0, (n + 1) * digits, digits, dtype=np.int32) if digits else np.zeros(n + 1, np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


def decode(packed: list[str] | np.ndarray | pa.Array, width: int) -> np.ndarray:
    """The code matrix (rows × rules: 0 false, 1 true, 2 unknown) back from packed traces."""
    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks()
    if isinstance(packed, pa.Array):  # the characters, straight from the string array's buffers
        packed = packed.cast(pa.string())
        _, offsets, data = packed.buffers()
        ends = np.frombuffer(offsets, dtype=np.int32)[packed.offset:packed.offset + len(packed) + 1]
        raw = np.frombuffer(data, dtype=np.uint8)[ends[0]:ends[-1]] if data is not None else np.zeros(0, np.uint8)
    else:
        raw = np.frombuffer("".join(packed).encode("ascii"), dtype=np.uint8)
    values = np.where(raw >= ord("a"), raw - ord("a") + 10, raw - ord("0")).astype(np.uint8)
    values = values.reshape(len(packed), -1)
    out = np.empty((len(packed), values.shape[1] * 2), dtype=np.int8)
    out[:, 0::2], out[:, 1::2] = values & 3, values >> 2
    return out[:, :width]


def verdicts_of(packed: str, rules: list[str]) -> dict[str, str]:
    """One household's trace as {rule id: 'true' | 'false' | 'unknown'}."""
    row = decode([packed], len(rules))[0]
    return {rule: VERDICTS[int(code)] for rule, code in zip(rules, row, strict=True)}


def table_codes(result: Evaluation, decision: str) -> np.ndarray:
    """Each row's combination of the decision's outcome-rule states (the outcome table's code)."""
    return result.plans[decision].code[result.combinations[decision]]


def decisive(book: RuleBook, decision: str, code: int) -> tuple[list[str], str | None]:
    """(the outcome rules on the decisive path, the one that decided) for one combination of states.

    The deciding rule is the deepest applying rule whose outcome is the decision's; where the decision is
    ``review``, the first unknown rule on the path (None where nothing decides)."""
    table = outcome_table(book, decision)
    res = table.resolve(code)
    states = dict(zip((r.id for r in table.rules), table.states(code), strict=True))
    path = [r.id for r in table.rules if r.id in res.cited]
    if res.decided is not None:
        applying = [r for r in path if states[r] == TRUE and (book.rules[r].outcome or "") == res.decided]
        return path, applying[-1] if applying else None
    unknown = [r for r in path if states[r] == UNKNOWN]
    return path, unknown[0] if unknown else None


def agreeing(book: RuleBook, decision: str, code: int) -> list[str]:
    """The outcome rules of a decision that no rule is known to decide, but whose rules that may apply all give
    the same outcome (each unknown, each with that outcome): together they decide it. Empty otherwise."""
    table = outcome_table(book, decision)
    res = table.resolve(code)
    if res.decided is None:
        return []
    states = dict(zip((r.id for r in table.rules), table.states(code), strict=True))
    path = [r.id for r in table.rules if r.id in res.cited]
    if any(states[r] == TRUE and (book.rules[r].outcome or "") == res.decided for r in path):
        return []
    return [r for r in path if states[r] == UNKNOWN and (book.rules[r].outcome or "") == res.decided]


def main_reasons(result: Evaluation, decisions: list[str], lang: str) -> tuple[pa.Array, pa.Array]:
    """(a one-line main reason, the clause ids of the decisive path) per row, in `lang`.

    The main reason names, for each decision, the rule that decided it and the outcome; for a decision left
    for review, the rule whose condition is unknown. Both are rendered once per combination of verdicts
    present and taken for every row by Arrow."""
    book = result.book
    reasons, clauses = [], []
    for name in decisions:
        plan, combination = result.plans[name], result.combinations[name]
        present = plan.present(combination)
        position = np.zeros(plan.table.size, dtype=np.int32)
        position[present] = np.arange(len(present), dtype=np.int32)
        lines, cited = [], []
        for code in plan.code[present]:
            path, rule = decisive(book, name, int(code))
            lines.append(_main_line(book, name, int(code), rule, lang))
            cited.append(",".join(dict.fromkeys(c for r in path for c in book.rules[r].clauses)))
        rows = pa.array(position[combination])
        reasons.append(pa.array(lines, type=pa.string()).take(rows))
        clauses.append(pa.array(cited, type=pa.string()).take(rows))
    return (pc.binary_join_element_wise(*reasons, ";"),
            pc.binary_join_element_wise(*clauses, ";"))


def _main_line(book: RuleBook, name: str, code: int, rule_id: str | None, lang: str) -> str:
    decision = book.decisions[name]
    res = outcome_table(book, name).resolve(code)
    value = res.decided if res.decided is not None else "review"
    label = decision.label(value, lang)
    if rule_id is None:
        together = [book.rules[r] for r in agreeing(book, name, code)]
        if together:  # no rule known to hold, but every one that may gives this outcome
            from povertyrules.decisions.files import labels

            note = labels()["agreeing"][lang]
            cited = ",".join(dict.fromkeys(c for r in together for c in r.clauses))
            if lang == "zh":
                return f"{cited} {'；'.join(r.description.zh for r in together)}：{note} → {label}"
            return f"{cited} {' / '.join(r.id for r in together)}: {note} → {value or '(blank)'} ({label})"
        return f"{getattr(decision.description, lang)}: {label}" if lang == "en" else \
            f"{decision.description.zh}：{label}"
    rule = book.rules[rule_id]
    if lang == "zh":
        verdict = "是" if res.decided is not None else "未知"
        return f"{rule.citation} {rule.description.zh}：{verdict} → {label}"
    verdict = "true" if res.decided is not None else "unknown"
    return f"{rule.citation} {rule.id}: {verdict} → {value or '(blank)'} ({label})"
