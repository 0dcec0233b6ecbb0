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
from povertyrules.engines.vectorized import Evaluation
from povertyrules.lang.rulebook import RuleBook

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
VERDICTS = {FALSE: "false", TRUE: "true", UNKNOWN: "unknown"}


def trace_rules(book: RuleBook) -> list[str]:
    """The rules a household's trace holds, in rule-file order: its criteria and outcome rules."""
    return [r.id for r in book.rules.values() if r.entity == "household" and r.kind in ("criterion", "outcome")]


def codes(result: Evaluation, rules: list[str]) -> np.ndarray:
    """The trace as an int8 matrix (rows × rules): 0 false, 1 true, 2 unknown."""
    out = np.empty((result.n, len(rules)), dtype=np.int8)
    for j, rule in enumerate(rules):
        out[:, j] = result.verdict(rule)
    return out


def encode(matrix: np.ndarray) -> np.ndarray:
    """Pack a code matrix into one hexadecimal string per row (two bits a rule, two rules a digit)."""
    n, width = matrix.shape
    digits = -(-width // 2)
    padded = np.zeros((n, digits * 2), dtype=np.uint8)
    padded[:, :width] = matrix
    chars = np.ascontiguousarray(HEX[padded[:, 0::2] + (padded[:, 1::2] << 2)])
    return chars.view(f"S{digits}").ravel().astype(str) if digits else np.full(n, "", dtype=str)


def decode(packed: list[str] | np.ndarray, width: int) -> np.ndarray:
    """The code matrix back from `encode`'s strings."""
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
    table = outcome_table(result.book, decision)
    out = np.zeros(result.n, dtype=np.int64)
    for i, rule in enumerate(table.rules):
        out += result.verdict(rule.id).astype(np.int64) * 3 ** i
    return out


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


def main_reasons(result: Evaluation, decisions: list[str], lang: str) -> tuple[pa.Array, pa.Array]:
    """(a one-line main reason, the clause ids of the decisive path) per row, in `lang`.

    The main reason names, for each decision, the rule that decided it and the outcome; for a decision left
    for review, the rule whose condition is unknown."""
    book = result.book
    reasons, clauses = [], []
    for name in decisions:
        codes_ = table_codes(result, name)
        present, inverse = np.unique(codes_, return_inverse=True)
        lines, cited = [], []
        for code in present:
            path, rule = decisive(book, name, int(code))
            lines.append(_main_line(book, name, int(code), rule, lang))
            cited.append(",".join(dict.fromkeys(c for r in path for c in book.rules[r].clauses)))
        reasons.append(pa.array(np.asarray(lines, dtype=object)[inverse], type=pa.string()))
        clauses.append(pa.array(np.asarray(cited, dtype=object)[inverse], type=pa.string()))
    return (pc.binary_join_element_wise(*reasons, ";"),
            pc.binary_join_element_wise(*clauses, ";"))


def _main_line(book: RuleBook, name: str, code: int, rule_id: str | None, lang: str) -> str:
    decision = book.decisions[name]
    res = outcome_table(book, name).resolve(code)
    value = res.decided if res.decided is not None else "review"
    label = decision.label(value, lang)
    if rule_id is None:
        return f"{getattr(decision.description, lang)}: {label}" if lang == "en" else \
            f"{decision.description.zh}：{label}"
    rule = book.rules[rule_id]
    if lang == "zh":
        verdict = "是" if res.decided is not None else "未知"
        return f"{rule.citation} {rule.description.zh}：{verdict} → {label}"
    verdict = "true" if res.decided is not None else "unknown"
    return f"{rule.citation} {rule.id}: {verdict} → {value or '(blank)'} ({label})"
