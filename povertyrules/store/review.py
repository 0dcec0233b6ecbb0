"""核查: a stored run's records against its rules — where what the county recorded (建档立卡状态, 脱贫年度,
监测对象类别, 风险是否已消除 …) disagrees with what the rules decided (疑似错评, 疑似漏评, 疑似错退, 疑似漏监测, risk
removals the rules do not support).

The checks are data (`rules/review/checks.yaml`): each is an expression in the rule language, evaluated on the
run's stored input rows with the run's own rule set (its snapshot), so decisions, criteria and recorded columns
can all be named. A check whose names the rule set does not know, or whose recorded columns the run's input did
not hold, is reported as not checked with the reason; a household whose record or decision is unknown for a check
counts as 无法核查, never as flagged. Nothing here names a status or a check: labels come from the checks file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import Engine

from povertyrules.engines.vectorized import Evaluation, column_vec, evaluate_columns, evaluate_expression
from povertyrules.errors import ExpressionError, RuleError
from povertyrules.lang import expr as ex
from povertyrules.lang.parameters import Text
from povertyrules.lang.rulebook import RuleBook
from povertyrules.lang.safeyaml import load as load_yaml
from povertyrules.model.columns import HOUSEHOLD_COLUMNS
from povertyrules.shipped import rules_folder
from povertyrules.store.changes import missing_names
from povertyrules.store.explain import snapshot_rulebook
from povertyrules.store.models import Run
from povertyrules.store.runs import decisions_frame, get_run, input_frame

CHECKS_FILE = rules_folder() / "review" / "checks.yaml"  # the checkout's, else the installed package's
#: the decision columns each flagged household is listed with (contract names; headers come from columns.yaml)
SHOWN = ("household_id", "county", "township", "village", "registered_status", "exit_year", "identification",
         "exit", "monitoring", "per_capita_income", "poverty_line", "four_look_score", "missing_columns")


class CheckSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    label: Text
    clause: list[str]
    description: Text
    recorded: list[str]
    among: str
    when: str

    @field_validator("clause", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class ChecksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[CheckSpec]
    labels: dict[str, dict[str, str]]


@dataclass
class CheckResult:
    spec: CheckSpec
    checked: bool
    why_not: Text | None = None
    flagged: np.ndarray | None = None  # bool per decision row
    among: np.ndarray | None = None
    unknown: np.ndarray | None = None


@dataclass
class Review:
    run: Run
    decisions: pd.DataFrame  # the run's decisions, positionally aligned with the check arrays
    results: list[CheckResult]
    labels: dict[str, dict[str, str]]
    inputs: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def checked(self) -> list[CheckResult]:
        return [r for r in self.results if r.checked]

    def summary(self, lang: str = "zh") -> pd.DataFrame:
        """One row per check: households flagged, the households it covers, the rate, those it cannot check."""
        words = self.labels[lang]
        rows = []
        for r in self.results:
            flagged = int(r.flagged.sum()) if r.checked else None
            among = int(r.among.sum()) if r.checked else None
            rows.append({"id": r.spec.id, words["check"]: getattr(r.spec.label, lang),
                         words["clause"]: ", ".join(r.spec.clause),
                         words["flagged"]: flagged, words["among"]: among,
                         words["rate"]: _rate(flagged, among), words["unknown"]: int(r.unknown.sum()) if r.checked
                         else None, words["description"]: getattr(r.spec.description, lang),
                         words["reason"]: getattr(r.why_not, lang) if r.why_not else ""})
        table = pd.DataFrame(rows).set_index("id")
        for key in ("flagged", "among", "unknown"):
            table[words[key]] = table[words[key]].astype("Int64")
        return table.reset_index(drop=True)

    def lines(self, lang: str = "zh") -> list[str]:
        """The summary as sentences in `lang` (from the checks file's templates)."""
        words, out = self.labels[lang], []
        for r in self.results:
            label = getattr(r.spec.label, lang)
            if not r.checked:
                out.append(words["not_checked_line"].format(check=label, reason=getattr(r.why_not, lang)))
                continue
            flagged, among = int(r.flagged.sum()), int(r.among.sum())
            out.append(words["line"].format(check=label, clause=", ".join(r.spec.clause), flagged=f"{flagged:,}",
                                            among=f"{among:,}", rate=percent(_rate(flagged, among)),
                                            unknown=f"{int(r.unknown.sum()):,}"))
        return out

    def by_place(self, level: str, lang: str = "zh") -> pd.DataFrame:
        """Per township (``level="township"``) or village: households, and per check the count and its rate."""
        words = self.labels[lang]
        keys = ["township"] if level == "township" else ["township", "village"]
        places = self.decisions[keys].astype(object).where(self.decisions[keys].notna(), "")
        places = places.replace("", words["blank"])
        frame = places.copy()
        frame[words["total"]] = 1
        for r in self.checked:
            label = getattr(r.spec.label, lang)
            frame[label] = r.flagged.astype(int)
            frame[f"_among_{label}"] = r.among.astype(int)
        table = frame.groupby(keys, sort=True).sum().reset_index()
        total = frame.drop(columns=keys).sum()
        table.loc[len(table)] = {**{k: words["all"] if i == 0 else "" for i, k in enumerate(keys)}, **total}
        for r in self.checked:
            label = getattr(r.spec.label, lang)
            among = table.pop(f"_among_{label}")
            table.insert(table.columns.get_loc(label) + 1, f"{label}·{words['rate']}",
                         [_rate(f, a) for f, a in zip(table[label], among, strict=True)])
        return table.rename(columns={"township": words["township"], "village": words["village"]})

    def households(self, lang: str = "zh", link: str | None = None) -> pd.DataFrame:
        """One row per flagged household and check, with its decisions; `link` formats a link to its explanation
        (``{decision_id}``, ``{household_id}`` and ``{run_id}`` are filled in)."""
        from povertyrules.decisions.files import labels as column_labels
        from povertyrules.decisions.files import localize

        words = self.labels[lang]
        parts = []
        for r in self.checked:
            rows = np.flatnonzero(r.flagged)
            if not len(rows):
                continue
            part = self.decisions.iloc[rows].copy()
            if "exit_year" in self.inputs:
                part["exit_year"] = self.inputs["exit_year"].iloc[rows].to_numpy()
            part.insert(0, "_check", getattr(r.spec.label, lang))
            parts.append(part)
        if not parts:
            return pd.DataFrame(columns=[words["check"], *SHOWN])
        frame = pd.concat(parts, ignore_index=True)
        shown = frame.reindex(columns=["_check", *SHOWN])
        if link:
            shown[words["link"]] = [link.format(decision_id=d, household_id=h, run_id=self.run.id)
                                    for d, h in zip(frame["id"], frame["household_id"], strict=True)]
        shown = shown.rename(columns={"_check": words["check"]})
        if lang != "zh":  # an English reader's words: labels, never the contract's names or codes
            return self._in_english(shown, words)
        contract = {c.name: c.zh for c in HOUSEHOLD_COLUMNS}
        book = self.book  # blanks by the headers a clerk knows, parameters (the year's line) by description
        shown["missing_columns"] = shown["missing_columns"].map(
            lambda v: missing_names(book, v, "zh") if isinstance(v, str) and v else v)
        out = localize(shown, self.book, lang)
        return out.rename(columns={k: v for k, v in contract.items() if k not in column_labels()["columns"]})

    def _in_english(self, shown: pd.DataFrame, words: dict[str, Any]) -> pd.DataFrame:
        from povertyrules.store.changes import label_of, vocabulary

        book, out = self.book, shown.copy()
        for name, decision in book.decisions.items():
            if name in out:
                out[name] = out[name].map(lambda v, d=decision: d.label(v, "en") if isinstance(v, str) else v)
        if "registered_status" in out:
            named = vocabulary()["words"]["en"]["registered_status"]
            out["registered_status"] = out["registered_status"].map(
                lambda v: named.get(v, v) if isinstance(v, str) else v)
        out["missing_columns"] = out["missing_columns"].map(
            lambda v: missing_names(book, v, "en") if isinstance(v, str) and v else v)
        headers = {c: (book.decisions[c].description.en if c in book.decisions else label_of(c, "en"))
                   for c in SHOWN if c in out}
        return out.rename(columns=headers)

    @property
    def book(self) -> RuleBook:
        return snapshot_rulebook(self.run)

    def sheets(self, lang: str = "zh", link: str | None = None) -> dict[str, pd.DataFrame]:
        words = self.labels[lang]
        return {words["summary"]: self.summary(lang), words["by_township"]: self.by_place("township", lang),
                words["by_village"]: self.by_place("village", lang),
                words["households"]: self.households(lang, link)}


def load_checks(path: Path | str | None = None) -> ChecksFile:
    path = Path(path) if path else CHECKS_FILE
    try:
        return ChecksFile.model_validate(load_yaml(path))
    except ValueError as exc:
        raise RuleError(f"核查文件格式有误 / the checks file is not valid: {exc}", file=str(path)) from None


def review(engine: Engine, run_id: int | None = None, checks: Path | str | None = None) -> Review:
    """Evaluate every check on a stored run (the latest by default)."""
    spec = load_checks(checks)
    decisions = decisions_frame(engine, run_id, with_id=True)
    run = get_run(engine, int(decisions["run_id"].iloc[0]) if len(decisions) else (run_id or 0))
    book = snapshot_rulebook(run)
    inputs = typed_inputs(decisions, book, run)
    evaluation = _evaluate(book, inputs) if len(inputs) else None
    results = [_check(book, evaluation, inputs, c, str(checks or CHECKS_FILE)) for c in spec.checks]
    return Review(run, decisions.reset_index(drop=True), results, spec.labels, inputs)


def _evaluate(book: RuleBook, inputs: pd.DataFrame) -> Evaluation:
    """Every rule on the stored rows, with every recorded column the input held (also those no rule reads,
    such as 脱贫年度: a check may compare them)."""
    columns = {name: column_vec(inputs[name], column.type)
               for name, column in book.columns("household").items() if name in inputs}
    return evaluate_columns(book, columns, len(inputs), years=inputs["year"].to_numpy())


def typed_inputs(decisions: pd.DataFrame, book: RuleBook, run: Run) -> pd.DataFrame:
    """The stored input rows of `decisions` (of `run`) as a typed frame the engine evaluates (positionally
    aligned)."""
    typed = input_frame(run, decisions).reset_index(drop=True)
    for name, column in book.columns("household").items():
        if name in typed and column.type == "bool":
            typed[name] = typed[name].astype("boolean")
    typed["year"] = decisions["year"].to_numpy()
    return typed


def _check(book: RuleBook, evaluation: Evaluation | None, inputs: pd.DataFrame, spec: CheckSpec,
           file: str) -> CheckResult:
    try:
        when, among = ex.parse(spec.when), ex.parse(spec.among)
    except ExpressionError as exc:
        raise RuleError(f"核查 {spec.id}: {exc}", file=file) from None
    unknown_names = sorted({n for node in (when, among) for n in ex.names(node)
                            if n != "year" and book.kind_of("household", n) is None})
    if unknown_names:
        return CheckResult(spec, False, Text(zh="本次运行的规则集尚不支持此项核查（缺少所需的列或判定）",
                                             en="the run's rule set does not support this check yet (a column "
                                                "or decision it needs is missing)"))
    contract = {c.name: c.zh for c in HOUSEHOLD_COLUMNS}
    absent = [c for c in spec.recorded if c not in inputs or not inputs[c].notna().any()]
    if absent:
        from povertyrules.store.changes import label_of

        names = "”“".join(contract.get(c, c) for c in absent)
        english = ", ".join(f"'{label_of(c, 'en')}'" for c in absent)
        return CheckResult(spec, False, Text(zh=f"本次运行的输入没有“{names}”列",
                                             en=f"the run's input has no {english} column"))
    if evaluation is None:
        empty = np.zeros(0, dtype=bool)
        return CheckResult(spec, True, None, empty, empty, empty)
    hit, scope = evaluate_expression(evaluation, when), evaluate_expression(evaluation, among)
    flagged = np.asarray(hit.values, dtype=bool) & np.asarray(hit.known, dtype=bool)
    in_scope = np.asarray(scope.values, dtype=bool) & np.asarray(scope.known, dtype=bool)
    return CheckResult(spec, True, None, flagged, in_scope | flagged, ~np.asarray(hit.known, dtype=bool))


def percent(rate: float | None) -> str:
    """A rate as people write it: ``60.3%`` (``—`` where there is nothing to count)."""
    return "—" if rate is None or rate != rate else f"{rate:.1%}"


def _rate(flagged: int | None, among: int | None) -> float | None:
    if flagged is None or not among:
        return None
    return round(flagged / among, 4)
