"""One exception tree. Every error names where it happened: a file, a rule and a position, or a column."""

from __future__ import annotations


class PovertyRulesError(Exception):
    """Base of every error this package raises on purpose."""


class RuleError(PovertyRulesError):
    """A rule or parameter file is wrong: names the file, the rule id and (for expressions) the position."""

    def __init__(self, message: str, *, file: str | None = None, rule: str | None = None,
                 position: int | None = None):
        self.message, self.file, self.rule, self.position = message, file, rule, position
        where = ", ".join(
            part for part in (
                f"file {file}" if file else "",
                f"rule {rule}" if rule else "",
                f"position {position}" if position is not None else "",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class RuleErrors(PovertyRulesError):
    """Several rule errors found in one pass (the loader reports all problems at once)."""

    def __init__(self, errors: list[RuleError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class ExpressionError(PovertyRulesError):
    """An expression uses something outside the allowed grammar; `position` is a 0-based character offset."""

    def __init__(self, message: str, position: int | None = None):
        self.message, self.position = message, position
        super().__init__(message if position is None else f"{message} (at position {position})")


class InputError(PovertyRulesError):
    """An input file cannot be read at all (missing required column, unknown format).

    Row-level problems are not exceptions: they are collected as error rows so no row is lost.
    """

    def __init__(self, zh: str, en: str, *, file: str | None = None, column: str | None = None):
        self.zh, self.en, self.file, self.column = zh, en, file, column
        where = ", ".join(p for p in (f"file {file}" if file else "", f"column {column}" if column else "") if p)
        super().__init__(f"{where}: {zh} / {en}" if where else f"{zh} / {en}")


class MissingParameters(PovertyRulesError):
    """A run for a year in which a required parameter (e.g. the poverty line) has no value: it stops, rather
    than marking every household ``review`` or raising no alert. Names each parameter and how to supply it."""

    def __init__(self, missing: dict[str, list[int]], labels: dict[str, tuple[str, str]] | None = None):
        self.missing = missing
        labels = labels or {}
        zh_parts, en_parts = [], []
        for name, years in missing.items():
            zh_label, en_label = labels.get(name, (name, name))
            span = "、".join(map(str, years))
            zh_parts.append(f"{span} 年的参数 {name}（{zh_label}）没有取值")
            en_parts.append(f"parameter {name} ({en_label}) has no value for {', '.join(map(str, years))}")
        example = next(iter(missing), "poverty_line")
        zh = ("；".join(zh_parts) + "。请用 --province 选择省份、用 --override 提供覆盖文件，"
              f"或用 --set {example}=数值 指定（Python：overrides={{'{example}': …}}）")
        en = ("; ".join(en_parts) + ". Choose a province (--province), give an override file (--override FILE) "
              f"or set it (--set {example}=VALUE; Python: overrides={{'{example}': …}})")
        self.zh, self.en = zh, en
        super().__init__(f"{zh} / {en}")


class MissingExtra(PovertyRulesError):
    """A command needs an optional extra (``pip install 'povertyrules[EXTRA]'``) that is not installed."""

    def __init__(self, what: str, extra: str, module: str):
        self.what, self.extra, self.module = what, extra, module
        super().__init__(f"{what} needs the optional extra '{extra}' (module {module} is missing): "
                         f"pip install 'povertyrules[{extra}]'")


def require(what: str, extra: str, *modules: str) -> None:
    """Raise `MissingExtra` naming `extra` unless every module in `modules` can be imported."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(what, extra, module)
