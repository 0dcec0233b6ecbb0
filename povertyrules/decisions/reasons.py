"""Decision rows with cited reasons, rendered in bulk with Arrow (no per-row Python).

A row's reasons are the outcome rules on its decisive path (the rule that applied, the exceptions that were
checked, or the unknown ones that made it ``review``), each followed by the criteria its condition names
(and, inside a criterion, the sub-criteria that were true or unknown). Each reason reads
``CLAUSE-ID rule-id: verdict — message`` with observed values and thresholds filled in.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from povertyrules.decisions.trace import main_reasons, pack, table_codes, trace_rules
from povertyrules.engines.vectorized import Evaluation
from povertyrules.lang import expr as ex
from povertyrules.lang.rulebook import REVIEW, Rule, RuleBook

#: Contract output column -> the rule-file name that supplies it.
OUTPUT_VALUES = {
    "poverty_line": "poverty_line",
    "monitoring_line": "monitoring_line",
    "per_capita_income": "per_capita_income",
    "four_look_score": "four_look_total",
}
#: Columns carried from the input for grouping (an extension of the contract); the county's own monitoring
#: category and risk-removal flag are carried for comparison with what the rules decide (no rule reads them).
CARRIED = ("county", "township", "village", "registered_status", "county_category", "risk_removed")
#: The decisions a decision row reports and cites: the contract's three, then extensions (columns after the
#: contract's).
CONTRACT_DECISIONS = ("identification", "exit", "monitoring")
REPORTED = (*CONTRACT_DECISIONS, "risk_removal")

WORDS = {
    "zh": {True: "是", False: "否", None: "未知", "missing": "缺失"},
    "en": {True: "true", False: "false", None: "unknown", "missing": "missing"},
}
JSON_WORDS = {True: "true", False: "false", None: "null", "missing": "null"}


@dataclass(frozen=True)
class Item:
    """One reason a row may carry: a rule, and the rule whose citation brings it in (None for outcome rules).

    A sub-criterion (`nested`) is listed only where it has its parent's verdict and that verdict is not
    false: the exclusion that applied, or the one that is unknown, not the five that did not.
    """

    rule: Rule
    parent: str | None
    nested: bool
    decision: str


def reason_items(book: RuleBook) -> list[Item]:
    """Every reason that can appear, in listing order: per decision its outcome rules, then their criteria
    (worked out once per rule set: a `RuleBook` is read-only)."""
    cached = _ITEMS.get(id(book))
    if cached is None or cached[0] is not book:
        cached = _ITEMS[id(book)] = (book, _reason_items(book))
    return cached[1]


_ITEMS: dict[int, tuple[RuleBook, list[Item]]] = {}


def _reason_items(book: RuleBook) -> list[Item]:
    items: list[Item] = []
    for decision in decision_order(book):
        outcome_rules = [book.rules[rid] for rid in book.decisions[decision].outcomes]
        items.extend(Item(rule, None, False, decision) for rule in outcome_rules)
        for rule in outcome_rules:
            direct = [n for n in (*ex.names(rule.expr), *rule.cites)
                      if book.kind_of("household", n) == "criterion"]
            for name in dict.fromkeys(direct):
                items.append(Item(book.rules[name], rule.id, False, decision))
                _sub_items(book, name, items, set(), decision)
    return items


def decision_order(book: RuleBook) -> list[str]:
    """The decisions a decision row reports and cites: the contract's three, and risk removal where defined."""
    return [d for d in REPORTED if d in book.decisions]


def _sub_items(book: RuleBook, name: str, items: list[Item], seen: set[str], decision: str) -> None:
    for sub in ex.names(book.rules[name].expr):
        if book.kind_of("household", sub) == "criterion" and sub not in seen:
            seen.add(sub)
            items.append(Item(book.rules[sub], name, True, decision))
            _sub_items(book, sub, items, seen, decision)


def decision_frame(result: Evaluation, frame: pd.DataFrame, version: str, lang: str = "zh",
                   member_reasons: pd.Series | None = None, with_records: bool = False,
                   reasons: str = "main") -> tuple[pd.DataFrame, pa.Table | None]:
    """The contract's decision columns (plus grouping columns, `missing_columns`, the decisive path's
    `clauses` and the packed `trace`) for every row, and — with `with_records` — one record per cited rule
    per row (see `reason_records`). `reasons` is ``main`` (one line: the rule that decided each decision) or
    ``full`` (every cited rule with observed values and thresholds)."""
    n = result.n
    out = pd.DataFrame({"household_id": frame["household_id"].to_numpy()})
    out["year"] = frame["year"].to_numpy(dtype="int64")
    for column, name in OUTPUT_VALUES.items():
        v = result.value(name)
        out[column] = np.where(v.known, np.round(np.asarray(v.values, dtype=float), 2), np.nan)
    for decision in CONTRACT_DECISIONS:
        out[decision] = _outcome(result, decision)
    out["monitoring_triggers"] = _triggers(result)
    main, clauses = _main_reasons(result, lang)
    if reasons == "full" or with_records:
        cited = _cited(result)
        memo: dict = {}  # each value's text made once, however many rules name it
        lines = {item.rule.id: _line(result, item.rule, lang, memo) for item, mask in cited}
    if reasons == "full":
        text = join_present([pc.if_else(pa.array(mask), lines[item.rule.id], pa.scalar(None, pa.string()))
                             for item, mask in cited], ";", n)
    else:
        text = main
    missing = _joined_flags(_missing_leaves(result), n)
    records = reason_records(result, _ids(frame), cited, lines, memo) if with_records else None
    if member_reasons is not None:
        member_lines = frame["household_id"].map(member_reasons)
        text = join_present([pa.array(member_lines.to_numpy(dtype=object), type=pa.string(), from_pandas=True),
                             text.cast(pa.string())], ";", n)
    out["reasons"] = _strings(text)
    out["rules_version"] = version
    for decision in decision_order(result.book):  # extensions, after the contract's columns
        if decision not in CONTRACT_DECISIONS:
            out[decision] = _outcome(result, decision)
    for column in CARRIED:
        out[column] = _carried(frame[column], lang) if column in frame else _strings(pa.nulls(n, pa.string()))
    out["missing_columns"] = _strings(missing)
    out["row"] = (frame["row"].to_numpy() if "row" in frame else np.arange(2, n + 2)).astype("int64")
    out["clauses"] = _strings(clauses)
    out["trace"] = _strings(pack(result, trace_rules(result.book)))
    return out, records


#: the dtype pandas gives a column of Python text (``str``): an outcome column keeps it
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


def _outcome(result: Evaluation, decision: str) -> pd.Series:
    """`Evaluation.outcome` as the ``str`` column pandas makes of it, built in Arrow from the outcome codes (a
    few labels, indexed) instead of from a Python string per row."""
    labels = result.outcome_values[decision]
    positions = np.arange(len(labels), dtype=np.int32)[result.codes[decision]]  # numpy's indexing, negatives too
    text = pa.DictionaryArray.from_arrays(pa.array(positions), pa.array(list(labels), pa.string())).cast(pa.string())
    return pd.Series(_TEXT.__from_arrow__(text))


def _strings(array: pa.Array) -> pd.Series:
    """An Arrow string (or dictionary-of-string) array as a pandas ``string`` column, without Python strings."""
    if pa.types.is_dictionary(array.type):
        array = array.cast(pa.string())
    return pd.Series(array.to_pandas(types_mapper=pd.ArrowDtype), dtype="string")


def _carried(values: pd.Series, lang: str) -> pd.Series:
    """An input column carried to the decision row, as text (yes/no in `lang`; a choice by its label)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.map({True: WORDS[lang][True], False: WORDS[lang][False]})
    if isinstance(values.dtype, pd.CategoricalDtype):  # the few categories once, then indexed
        labels = pa.array(values.cat.categories.astype(object).astype(str).to_numpy(), type=pa.string())
        codes = values.cat.codes.to_numpy()
        return _strings(pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), labels))
    return pd.Series(pd.array(values.astype(object).to_numpy() if values.dtype == object else values,
                              dtype="string"), dtype="string")


def _distinct(parts: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(the first row of each distinct combination of `parts`' values, every row's combination number): the
    text a decision row shows depends on a few codes, whose combinations repeat over most rows."""
    key = np.zeros(n, dtype=np.int64)
    for part in parts:
        codes, count = (part.astype(np.int64), 2) if part.dtype == bool else _numbered(part)
        key = key * count + codes
        if key.size and key.max() >= 2 ** 31:  # keep the numbers small: number the combinations seen so far
            key = _numbered(key)[0]
    codes, count = _numbered(key)
    first = np.empty(count, dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1)  # the last write wins: each combination's first row
    return first, codes


def _numbered(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Each value's number among the distinct values (in their order), and how many there are; by counting
    where the values are small integers (codes), by sorting otherwise."""
    values = np.asarray(values)
    if values.dtype.kind in "iub" and values.size and values.min() >= 0 and values.max() < 4 * values.size + 4096:
        present = np.bincount(values.astype(np.int64)) > 0
        number = np.cumsum(present) - 1
        return number[values.astype(np.int64)], int(present.sum())
    distinct, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), len(distinct)


def _expand(texts: pa.Array, inverse: np.ndarray) -> pa.DictionaryArray:
    """Each row's text, `texts` (one per combination) looked up by the row's combination number."""
    return pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)), texts)


def _main_reasons(result: Evaluation, lang: str) -> tuple[pa.Array, pa.Array]:
    """`main_reasons` (the main reason line and the decisive path's clause ids), rendered once for each
    combination of the decisions' outcome-rule states present and looked up for every row."""
    decisions = decision_order(result.book)
    first, inverse = _distinct([table_codes(result, name) for name in decisions], result.n)
    lines, clauses = main_reasons(result.take(first), decisions, lang)
    return _expand(lines, inverse), _expand(clauses, inverse)


def _joined_flags(flags: dict[str, np.ndarray], n: int) -> pa.Array:
    """Per row, the names whose flag is set there, joined with ";" (null where none is): joined once for each
    combination present."""
    if not flags:
        return pa.nulls(n, pa.string())
    masks = list(flags.values())
    first, inverse = _distinct(masks, n)
    texts = join_present([pa.array(np.where(mask[first], name, None), type=pa.string())
                          for name, mask in flags.items()], ";", len(first))
    return _expand(texts, inverse)


def _triggers(result: Evaluation) -> pd.Series:
    decision = result.book.decisions["monitoring"]
    reported = np.isin(result.outcome("monitoring"), list(decision.report_triggers_for))
    return _strings(_joined_flags({trigger: reported & result.value(r.id).true()
                                   for trigger, r in result.book.triggers().items()}, result.n))


def _cited(result: Evaluation) -> list[tuple[Item, np.ndarray]]:
    """Each rule that some row cites, in listing order, with the mask of the rows citing it."""
    n = result.n
    masks: dict[str, np.ndarray] = {}
    first: dict[str, Item] = {}
    for item in reason_items(result.book):
        rule = item.rule
        if item.parent is None:
            mask = result.cited[rule.id]
        else:
            mask = masks[item.parent]
            if item.nested:
                v, parent = result.value(rule.id), result.value(item.parent)
                mask = mask & ((v.true() & parent.true()) | (v.unknown() & parent.unknown()))
        first.setdefault(rule.id, item)
        masks[rule.id] = masks.get(rule.id, np.zeros(n, dtype=bool)) | mask
    return [(item, masks[rid]) for rid, item in first.items() if masks[rid].any()]


def reason_table(result: Evaluation, ids: pa.Array, lang: str) -> pa.Table:
    """Only the reason records of every row (see `reason_records`), for explaining stored decisions."""
    cited, memo = _cited(result), {}
    lines = {item.rule.id: _line(result, item.rule, lang, memo) for item, _ in cited}
    return reason_records(result, ids, cited, lines, memo)


def _ids(frame: pd.DataFrame) -> pa.Array:
    return pa.array(frame["household_id"].to_numpy(dtype=object), type=pa.string())


def reason_records(result: Evaluation, ids: pa.Array, cited: list[tuple[Item, np.ndarray]],
                   lines: dict[str, pa.Array], memo: dict | None = None) -> pa.Table:
    """One record per (row, cited rule): verdict, observed values and thresholds as JSON, and the message.

    Records are listed rule by rule (in citing order), each rule's rows in row order; every column is gathered
    in one pass over all rules (a rule's texts are made for all rows, then the cited ones are taken)."""
    if not cited:
        return pa.table({})
    book, n = result.book, result.n
    rules = [item.rule for item, _ in cited]
    rows = [np.flatnonzero(mask) for _, mask in cited]
    counts = np.asarray([len(r) for r in rows], dtype=np.int64)
    seq = np.repeat(np.arange(len(cited), dtype=np.int32), counts)
    row = np.concatenate(rows)
    flat = seq.astype(np.int64) * n + row  # the record's position in the rules' texts laid end to end
    verdicts = np.stack([result.verdict(rule.id) for rule in rules])  # rules × rows: 0 false, 1 true, 2 unknown
    observed, thresholds = [], []
    for rule in rules:
        names = [n for n in dict.fromkeys([*ex.names(rule.expr), *message_fields(rule)]) if n in result.env]
        observed.append(_json(result, [n for n in names if not is_threshold(book, n)], memo))
        thresholds.append(_json(result, [n for n in names if is_threshold(book, n)], memo))

    def per_rule(values: list) -> pa.Array:
        return pa.array(np.asarray(values, dtype=object)[seq], type=pa.string())

    def gathered(texts: list[pa.Array]) -> pa.Array:
        return pa.concat_arrays(texts).take(pa.array(flat))

    return pa.table({
        "household_id": ids.take(pa.array(row)),
        "seq": pa.array(seq),
        "decision": per_rule([rule.decision or item.decision for rule, (item, _) in zip(rules, cited, strict=True)]),
        "rule_id": per_rule([rule.id for rule in rules]),
        "kind": per_rule([rule.kind for rule in rules]),
        "clause": per_rule([rule.citation for rule in rules]),
        "verdict": pa.array(np.asarray(["false", "true", "unknown"], dtype=object)[verdicts[seq, row]],
                            type=pa.string()),
        "observed": gathered(observed),
        "thresholds": gathered(thresholds),
        "message": gathered([lines[rule.id] for rule in rules]),
    })


def message_fields(rule: Rule) -> list[str]:
    """The values a rule's messages name (in either language), so a record holds all its message shows."""
    texts = [rule.message.zh, rule.message.en] if rule.message else []
    return [f for t in texts for _, f, _, _ in string.Formatter().parse(t) if f]


def is_threshold(book: RuleBook, name: str) -> bool:
    """A parameter, or a definition computed from parameters only (e.g. the monitoring line)."""
    kind = book.kind_of("household", name)
    if kind == "parameter":
        return True
    if kind == "definition":
        return all(is_threshold(book, n) for n in ex.names(book.rules[name].expr))
    return False


def _json(result: Evaluation, names: list[str], memo: dict | None = None) -> pa.Array:
    """``{"name": value, …}`` per row (null for unknown values), built in bulk."""
    if not names:
        return pa.array(["{}"] * result.n, type=pa.string())
    pieces: list[pa.Array | str] = ["{"]
    for i, name in enumerate(names):
        pieces.append(("" if i == 0 else ", ") + f'"{name}": ')
        pieces.append(_value_text(result, name, JSON_WORDS, quote_text=True, memo=memo))
    pieces.append("}")
    return pc.binary_join_element_wise(*pieces, "")


def join_present(parts: list[pa.Array], separator: str, n: int) -> pa.Array:
    """Join each row's non-null strings with `separator` in one pass (null where none is present).

    (pyarrow's ``binary_join_element_wise(null_handling="skip")`` drops rows that are null in every input, so
    each part is suffixed with the separator instead, blanks filled with "", and the last separator removed.)
    """
    if not parts:
        return pa.nulls(n, pa.string())
    suffixed = [pc.fill_null(pc.binary_join_element_wise(p, separator, ""), "") for p in parts]
    joined = pc.binary_join_element_wise(*suffixed, "")
    trimmed = pc.utf8_slice_codeunits(joined, 0, -len(separator))
    return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), trimmed)


def _missing_leaves(result: Evaluation) -> dict[str, np.ndarray]:
    """Input columns and parameters whose absence made some decision ``review``, per row.

    Starts at the outcome rules that were unknown on a row's decisive path and follows only names that are
    unknown on that row, so a blank cell that did not matter is not listed.
    """
    book, n = result.book, result.n
    leaves: dict[str, np.ndarray] = {}

    def mark(name: str, mask: np.ndarray) -> None:
        if not mask.any():
            return
        kind = book.kind_of("household", name)
        if kind in ("column", "parameter"):
            leaves[name] = leaves.get(name, np.zeros(n, bool)) | mask
        elif kind in ("definition", "criterion"):
            mark_children(book.rules[name].expr, mask)
        elif kind == "decision":
            for rid in book.decisions[name].outcomes:
                mark_children(book.rules[rid].expr, mask & result.cited[rid] & result.value(rid).unknown())

    def mark_children(node: ex.Node, mask: np.ndarray) -> None:
        for child in ex.names(node):
            if child in result.env:
                mark(child, mask & result.value(child).unknown())

    for decision in decision_order(book):
        mark(decision, result.value(decision).unknown())
    return {k: v for k, v in leaves.items() if v.any()}


def _line(result: Evaluation, rule: Rule, lang: str, memo: dict | None = None) -> pa.Array:
    """``CLAUSE rule-id: verdict — message`` (zh: ``CLAUSE 规则说明：verdict — message``) for every row (masked by
    the caller)."""
    words = WORDS[lang]
    v = result.value(rule.id)
    verdict = pc.if_else(pa.array(v.true()), words[True], pc.if_else(pa.array(v.false()), words[False],
                                                                    words[None]))
    # zh, for a reader: the rule's own words and the outcome's label; en, for programs too: ids and codes
    head = f"{rule.citation} {rule.description.zh}：" if lang == "zh" else f"{rule.citation} {rule.id}: "
    if rule.kind == "outcome":
        decision = result.book.decisions[rule.decision or ""]
        label = decision.label(rule.outcome or "", lang)
        target = f" → {label}" if lang == "zh" or not rule.outcome else f" → {rule.outcome} ({label})"
        return pc.binary_join_element_wise(head, verdict, target, "")
    template = getattr(rule.message, lang) if rule.message else ""
    pieces: list[pa.Array | str] = [head, verdict, " — "]
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append(literal)
        if field:
            pieces.append(_value_text(result, field, words, memo=memo))
    return pc.binary_join_element_wise(*pieces, "")


def _value_text(result: Evaluation, name: str, words: dict, quote_text: bool = False,
                memo: dict | None = None) -> pa.Array:
    """A value as text on every row (`words` for yes/no and missing); kept in `memo` for the next rule."""
    key = (name, words["missing"], words[True], quote_text)
    if memo is not None and key in memo:
        return memo[key]
    text = _text_of(result, name, words, quote_text)
    if memo is not None:
        memo[key] = text
    return text


def _text_of(result: Evaluation, name: str, words: dict, quote_text: bool) -> pa.Array:
    book = result.book
    v = result.value(name)
    if name in book.rules:
        kind = book.rules[name].type
    elif name in book.parameters:
        kind = book.parameters[name].type
    else:
        kind = book.columns("household")[name].type if name in book.columns("household") else "text"
    known = pa.array(np.asarray(v.known, dtype=bool))
    values = np.asarray(v.values)
    if kind == "number":
        text = pc.cast(pa.array(np.round(values.astype(float), 2)), pa.string())
    elif kind == "bool":
        text = pc.if_else(pa.array(values.astype(bool)), words[True], words[False])
    else:
        text = pa.array(values.astype(object), type=pa.string(), from_pandas=True)
        if quote_text:
            escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
            text = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.if_else(known, text, words["missing"])


__all__ = ["OUTPUT_VALUES", "REVIEW", "decision_frame", "reason_items"]
