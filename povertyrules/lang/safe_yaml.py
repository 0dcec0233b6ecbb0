"""Reading the project's YAML files as data: plain scalars, lists and maps only, with limits.

Anchors and aliases (the "billion laughs"), tags (``!!python/...``) and oversized files are refused before any
structure is built, so a hostile file ends in a clean `RuleError` in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from povertyrules.errors import RuleError

MAX_BYTES = 2_000_000


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:  # refuse aliases before they expand
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"aliases are not allowed (line {event.start_mark.line + 1})")
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise yaml.YAMLError(f"anchors are not allowed (line {event.start_mark.line + 1})")
        tag = getattr(event, "tag", None)
        if tag is not None and getattr(event, "implicit", (True,)) in (False, (False, False)) and tag.startswith("!"):
            raise yaml.YAMLError(f"tags are not allowed: {tag} (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def load_yaml_text(text: str, file: str) -> Any:
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise RuleError(f"file is larger than {MAX_BYTES} bytes", file=file)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise RuleError(f"not valid YAML: {exc}", file=file) from None


def load_yaml(path: Path | str) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read the file: {exc}", file=str(path)) from None
    return load_yaml_text(text, str(path))
