"""The one YAML reader for every file the project reads: rules, parameters, overrides, procedures, rule tests.

Rule files are data written by people, sometimes by people who mean harm. The reader refuses what plain data
never needs and what attacks use: anchors and aliases (a 700-byte "billion laughs" file expands to gigabytes),
explicit tags (``!!python/object``, ``!!binary``, custom tags), files or documents beyond a size limit, and
values plain YAML would turn into something surprising (``.nan``, ``.inf``, impossible dates). Every refusal
is a `RuleError` naming the file and the line.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from povertyrules.errors import RuleError

T = TypeVar("T")

MAX_BYTES = 2_000_000  # the largest shipped rule file is ~20 kB
MAX_DEPTH = 40  # nesting of mappings and sequences
MAX_NODES = 200_000


class _Refused(Exception):
    def __init__(self, message: str, line: int | None):
        self.message, self.line = message, line
        super().__init__(message)


class _Loader(yaml.SafeLoader):
    """SafeLoader without anchors, aliases or explicit tags, with limits on depth and node count."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("YAML aliases (*name) are not allowed in rule files", line)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refused(f"YAML anchors (&{anchor}) are not allowed in rule files", line)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):  # the parser sets a tag only where the file wrote one
            raise _Refused(f"YAML tags ({tag}) are not allowed in rule files", line)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values in one file", line)
        nested = isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent)
        self._depth += nested
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", line)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= nested


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if not math.isfinite(value):
        raise _Refused(f"'{node.value}' is not a finite number", node.start_mark.line + 1)
    return value


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> dt.date | dt.datetime:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError) as exc:
        raise _Refused(f"'{node.value}' is not a valid date ({exc})", node.start_mark.line + 1) from None


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def loads(text: str, file: str = "<text>") -> Any:
    """Parse YAML text under the rules above; raise `RuleError` naming `file` and the line."""
    if len(text) > MAX_BYTES:
        raise RuleError(f"file larger than {MAX_BYTES // 1_000_000} MB", file=file)
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise RuleError(f"{exc.message}{where}", file=file) from None
    except yaml.YAMLError as exc:
        raise RuleError(f"not valid YAML: {exc}", file=file) from None
    except (ValueError, OverflowError, RecursionError, TypeError) as exc:
        raise RuleError(f"not valid YAML: {exc}", file=file) from None
    finally:
        loader.dispose()


def load(path: Path | str) -> Any:
    """Read and parse one YAML file (UTF-8) under the rules above."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RuleError(f"file larger than {MAX_BYTES // 1_000_000} MB", file=str(path))
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(f"not UTF-8 text: {exc.reason} at byte {exc.start}", file=str(path)) from None
    except OSError as exc:
        raise RuleError(f"cannot read: {exc.strerror}", file=str(path)) from None
    return loads(text, str(path))


def load_folder(folder: Path, load: Callable[[Path], T], kind: str) -> dict[str, T]:
    """Every ``*.yaml`` file of `folder` read by `load`, by the name each declares (a name declared twice is a
    `RuleError` naming the second file; a missing folder holds none)."""
    if not folder.is_dir():
        return {}
    loaded: dict[str, T] = {}
    for path in sorted(folder.glob("*.yaml")):
        item = load(path)
        name = item.name  # type: ignore[attr-defined]
        if name in loaded:
            raise RuleError(f"{kind} '{name}' is defined twice", file=str(path))
        loaded[name] = item
    return loaded
