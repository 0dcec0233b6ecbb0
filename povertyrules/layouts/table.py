"""Finding the table in a sheet: the header row(s) under the title lines, merged two-level headers flattened,
the layout recognised from the headers, and the lines that are not households (合计, 小计, signatures, blanks)
set aside with the reason."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from povertyrules.errors import InputError
from povertyrules.io.sheets import Grid
from povertyrules.layouts.spec import Layout, header_keys

HEADER_SEARCH = 30  # lines from the top in which the header is looked for
TOTAL = re.compile(r"^\s*(?:合\s*计|小\s*计|总\s*计|全\s*县|全\s*乡|全\s*镇|累\s*计)")
SIGNATURE = re.compile(r"(?:填表人|填报人|审核人|负责人|制表人|统计人|签字|签名|盖章"
                       r"|联系电话[:：]|填报日期|制表日期|说明[:：])")
SKIP_REASONS = {
    "title": ("表头以上的标题行", "title line above the header"),
    "total": ("合计、小计行", "total or subtotal line"),
    "signature": ("签字、填表人或说明行", "signature, compiler or note line"),
    "blank": ("空行", "blank line"),
    "header": ("表头行", "header line"),
}


@dataclass
class Table:
    """The header found in a grid, and which layout it is."""

    layout: Layout
    header_rows: list[int]  # sheet row numbers of the header line(s)
    headers: list[str]  # one flattened header per column (group/leaf for two-level headers)
    columns: dict[str, int]  # layout field -> column index
    unrecognised: list[str]  # headers no field of the layout claimed
    first_data: int  # index into grid.cells of the first line below the header
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (sheet row, reason key, text)


def find_table(grid: Grid, layouts: dict[str, Layout], forced: Layout | None = None) -> Table:
    """The header line(s) and the layout: `forced` if given, else the one whose headers match best."""
    candidates = [forced] if forced else list(layouts.values())
    best: tuple[int, int, Layout, int, list[str]] | None = None
    for index in range(min(HEADER_SEARCH, len(grid.cells))):
        for levels in (1, 2):
            headers = flatten(grid, index, levels)
            if headers is None:
                continue
            for layout in candidates:
                columns, _ = match_columns(headers, layout)
                if not recognised(headers, layout) and forced is None:
                    continue
                score = len(columns)
                if best is None or score > best[0] or (score == best[0] and levels < best[1]):
                    best = (score, levels, layout, index, headers)
    if best is None or best[0] == 0:
        raise _no_header(grid, candidates)
    _, levels, layout, index, headers = best
    columns, unrecognised = match_columns(headers, layout)
    missing = [f for f in (layout.key,) if f not in columns]
    if missing:
        field_ = layout.fields[missing[0]]
        raise InputError(f"表中没有“{field_.column.zh}”列（格式：{layout.name}）",
                         f"the table has no '{missing[0]}' column (layout {layout.name})", file=grid.file,
                         column=missing[0])
    table = Table(layout, grid.rows[index:index + levels], headers, columns, unrecognised, index + levels)
    table.skipped = [(grid.rows[i], "title", _line_text(grid.cells[i])) for i in range(index)
                     if any(grid.cells[i])]
    table.skipped += [(grid.rows[i], "blank", "") for i in range(index) if not any(grid.cells[i])]
    return table


def _no_header(grid: Grid, candidates: list[Layout]) -> InputError:
    """The error for a file no layout recognises: the closest layout and the headers it lacks (a county file
    with one required column renamed or deleted), else the layouts tried — by their descriptions."""
    closest: tuple[int, Layout, list[str]] | None = None
    for index in range(min(HEADER_SEARCH, len(grid.cells))):
        for levels in (1, 2):
            headers = flatten(grid, index, levels)
            if headers is None:
                continue
            keys = {k for h in headers for k in _keys(h)}
            for layout in candidates:
                lacking = [spellings[0] for spellings in layout.recognise if not any(r in keys for r in spellings)]
                found = len(layout.recognise) - len(lacking)
                if found and (closest is None or found > closest[0]):
                    closest = (found, layout, lacking)
    if closest is not None and closest[2]:
        _, layout, lacking = closest
        zh, en = "”“".join(lacking), "', '".join(lacking)
        return InputError(f"未找到可识别的表头：最接近“{layout.description.zh}”，但表中没有“{zh}”列；"
                          f"可用 --layout 指定格式", f"no recognisable header: closest to the {layout.name} layout "
                          f"({layout.description.en}), but the table has no '{en}' column; use --layout to name "
                          f"one", file=grid.file, column=lacking[0])
    tried = sorted(candidates, key=lambda layout: layout.name)
    described = "；".join(t.description.zh for t in tried)
    return InputError(f"未找到可识别的表头（已尝试：{described}）；可用 --layout 指定格式",
                      f"no recognisable header found (layouts tried: {', '.join(t.name for t in tried)}); "
                      "use --layout to name one", file=grid.file)


def recognised(headers: list[str], layout: Layout) -> bool:
    keys = {k for h in headers for k in _keys(h)}
    return all(any(r in keys for r in alternatives) for alternatives in layout.recognise)


def _keys(header: str) -> tuple[str, ...]:
    parts = header.split("/") if "/" in header else [header]
    keys = [*header_keys(header), *header_keys(parts[-1])]
    return tuple(dict.fromkeys(keys))


def match_columns(headers: list[str], layout: Layout) -> tuple[dict[str, int], list[str]]:
    """Layout field -> column index. A flattened ``group/leaf`` header is matched whole before its leaf;
    a field's own header spellings are tried in order; each column serves one field."""
    exact: dict[str, list[int]] = {}
    leaf: dict[str, list[int]] = {}
    for i, header in enumerate(headers):
        if not header:
            continue
        full, stripped = header_keys(header)
        exact.setdefault(full, []).append(i)
        exact.setdefault(stripped, []).append(i)
        if "/" in header:
            for key in header_keys(header.rsplit("/", 1)[1]):
                leaf.setdefault(key, []).append(i)
    taken: set[int] = set()
    columns: dict[str, int] = {}
    for lookup in (exact, leaf):
        for name, f in layout.fields.items():
            if name in columns:
                continue
            for key in f.headers:
                free = [i for i in lookup.get(key, []) if i not in taken]
                if free:
                    columns[name] = free[0]
                    taken.add(free[0])
                    break
    unrecognised = [h for i, h in enumerate(headers) if h and i not in taken]
    return columns, unrecognised


def flatten(grid: Grid, index: int, levels: int) -> list[str] | None:
    """Headers from line `index` (and `index + 1` for a two-level header), or None if not a plausible header."""
    width = grid.width
    top = _padded(grid.cells[index], width)
    if sum(1 for c in top if c) < 2 or any(c and _numeric(c) for c in top):
        return None
    if levels == 1:
        return [c or "" for c in top]
    if index + 1 >= len(grid.cells):
        return None
    sub = _padded(grid.cells[index + 1], width)
    if sum(1 for c in sub if c) < 2 or any(c and _numeric(c) for c in sub):
        return None
    spans = _horizontal_merges(grid, index)
    headers: list[str] = []
    group, group_end = "", -1
    for j in range(width):
        label, leaf = top[j] or "", sub[j] or ""
        if label and not leaf:  # merged down over both lines
            headers.append(label)
            group, group_end = "", -1
            continue
        if label:  # a group starts: it spans its merged range, or (without merge data) runs to the next label
            group, group_end = label, spans.get(j, j if spans else width)
        if j > group_end:
            group = ""
        headers.append(f"{group}/{leaf}" if group and leaf and leaf != group else leaf)
    if not any("/" in h for h in headers):
        return None  # not a two-level header after all
    return headers


def _horizontal_merges(grid: Grid, index: int) -> dict[int, int]:
    return {c0: c1 for (r0, c0), (_r1, c1) in grid.merged if r0 == index and c1 > c0}


def _padded(row: list[str | None], width: int) -> list[str | None]:
    return [*row, *([None] * (width - len(row)))]


def _numeric(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,.]+(元|人|亩)?", cell.strip())) and cell.strip() not in ("-",)


def _line_text(row: list[str | None]) -> str:
    return " ".join(c for c in row if c)[:200]


def classify(row: list[str | None], key_column: int) -> str | None:
    """Why a data line is not a household row ('total', 'signature', 'blank'), or None if it is one."""
    cells = [c for c in row if c]
    if not cells:
        return "blank"
    head = " ".join(cells[:3])
    if TOTAL.search(head):
        return "total"
    key = row[key_column] if key_column < len(row) else None
    if (not key or SIGNATURE.search(key)) and (SIGNATURE.search(" ".join(cells)) or len(cells) == 1):
        return "signature"
    return None
