"""Personal data: identity-card and mobile numbers found, checked and masked — one module for every output.

Masked forms keep what a clerk needs to tell two people apart and no more: an identity number keeps its first
six digits (the issuing area) and its last four (``110101********1234``), a mobile number its first three and
last four (``138****5678``). Every common written form is recognised: 18 digits (the last may be ``X``) or the
old 15 digits, run together or split by spaces or hyphens (``522301-19900101-1236``); mobile numbers with
or without ``+86`` / ``0086`` / ``86``, split as ``138-1234-5678`` or ``139 1234 5678``.

Identity numbers in a column that holds them are checked against GB 11643-1999: the birth date must exist
and the check digit must match (`id_number_problem`). At rest, a keyed hash (`lookup_key`) stands for the
number; the key is ``POVERTYRULES_KEY`` (see README, "Personal data").
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import os
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_SEP = r"[ \-]?"
#: 18-digit (17 + digit/X) and 15-digit identity numbers, optionally split 6-8-4 (or 6-6-3) by a space/hyphen
ID_NUMBER = re.compile(rf"(?<![0-9A-Za-z])(\d{{6}}){_SEP}(\d{{8}}){_SEP}(\d{{3}}[0-9Xx])(?![0-9A-Za-z])"
                       rf"|(?<![0-9A-Za-z])(\d{{6}}){_SEP}(\d{{6}}){_SEP}(\d{{3}})(?![0-9A-Za-z])")
#: mainland mobile numbers, optionally +86 / 0086 / 86 and split 3-4-4
PHONE = re.compile(r"(?<![0-9])((?:\+|00)?86[ \-]?)?(1[3-9]\d)[ \-]?(\d{4})[ \-]?(\d{4})(?![0-9])")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
ENV_KEY = "POVERTYRULES_KEY"
_DIGITS = re.compile(r"\d{7}")
#: set only by an explicit operator option (``povertyrules --show-identities …``, ``serve --show-identities``)
_REVEAL = {"on": False}


def reveal(on: bool = True) -> None:
    """The operator asked to see identity numbers unmasked (for this process)."""
    _REVEAL["on"] = on


def revealing() -> bool:
    return _REVEAL["on"]


def protect(value: Any) -> Any:
    """`mask(value)`, unless the operator asked to see identities."""
    return value if revealing() else mask(value)


def _mask_id(match: re.Match) -> str:
    if match.group(1):
        return f"{match.group(1)}********{match.group(3)[-4:]}"
    return f"{match.group(4)}*****{match.group(6)[-4:]}" if len(match.group(6)) >= 4 else \
        f"{match.group(4)}******{match.group(6)}"


def _mask_phone(match: re.Match) -> str:
    return f"{match.group(1) or ''}{match.group(2)}****{match.group(4)}"


#: full-width digits, X, hyphen and space as a Chinese input method types them, folded one character for one
#: to their ASCII forms before the patterns are tried (so ５２２３…０３Ｘ is found as a whole number)
_FOLD = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "Ｘ": "X", "ｘ": "x", "－": "-", "　": " "})


def mask_text(text: str) -> str:
    """`text` with every identity and mobile number masked (written in full-width digits too)."""
    folded = text.translate(_FOLD)
    if not _DIGITS.search(folded.replace(" ", "").replace("-", "")):
        return text
    if folded == text:
        return PHONE.sub(_mask_phone, ID_NUMBER.sub(_mask_id, text))
    return _sub_folded(PHONE, _mask_phone, _sub_folded(ID_NUMBER, _mask_id, text))


def _sub_folded(pattern: re.Pattern, masked, text: str) -> str:
    """`pattern.sub(masked, …)` found on the folded text; what is not masked keeps its own characters."""
    parts, at = [], 0
    for match in pattern.finditer(text.translate(_FOLD)):
        parts += [text[at:match.start()], masked(match)]
        at = match.end()
    return "".join([*parts, text[at:]])


def mask(value: Any) -> Any:
    """Mask identity-card and mobile numbers in text, and in the text inside lists, tuples and dicts."""
    if isinstance(value, str):
        return _mask_seen(value)
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask(v) for v in value)
    return value


#: `mask_text` of the texts masked last: a page masks the same labels, clause texts and reasons on every view
_mask_seen = functools.lru_cache(maxsize=1 << 14)(mask_text)


def _may_hold_numbers(text: pa.Array | pa.ChunkedArray) -> bool:
    """Whether any cell has a run of 7 digits (spaces and hyphens aside): a fast test, in Arrow."""
    loose = pc.replace_substring_regex(text, r"[ \-]", "")
    return bool(pc.any(pc.match_substring_regex(loose, r"\d{7}")).as_py())


#: a superset of the cells `ID_NUMBER` or `PHONE` match, in RE2 (Arrow) syntax: the same shapes with their
#: boundaries (RE2 has no look-around, so the neighbouring character or the text's end is matched instead), and
#: ``\p{Nd}`` for Python's Unicode ``\d`` (full-width ０-９ too). A phone's optional +86 prefix is left out, and
#: with it the check before the number, so the pattern only ever finds more cells, never fewer.
_CANDIDATE = (r"(^|[^0-9A-Za-z０-９Ｘｘ])\p{Nd}{6}[ \-　－]?(\p{Nd}{8}[ \-　－]?\p{Nd}{3}[0-9Xx０-９Ｘｘ]|"
              r"\p{Nd}{6}[ \-　－]?\p{Nd}{3})([^0-9A-Za-z]|$)|"
              r"[1１][3-9３-９]\p{Nd}[ \-　－]?\p{Nd}{4}[ \-　－]?\p{Nd}{4}([^0-9]|$)")


def _candidates(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which cells may hold an identity or mobile number (every cell `mask_text` would change), in Arrow."""
    return np.asarray(pc.fill_null(pc.match_substring_regex(text, _CANDIDATE), False), dtype=bool)


#: the fewest characters a cell must have for `mask_text` (or `pseudonym_text`) to change it: a mobile number's
#: 11 digits (an identity number has 15 or 18); shorter cells are left out before any pattern is tried
SHORTEST = 11


def _text_cells(column: pd.Series) -> pa.Array:
    """A text column as one Arrow string array (no copy where the column is Arrow-backed already)."""
    cells = pa.array(column.astype("string"), type=pa.string(), from_pandas=True)
    return cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells


def _candidate_rows(text: pa.Array) -> np.ndarray:
    """Positions of the cells that may hold a number (`_candidates`), each distinct value tried once and only if
    it is long enough (`SHORTEST`): a decision file repeats the same reason, clause and status text on most rows."""
    encoded = pc.dictionary_encode(text)
    distinct = encoded.dictionary
    long = np.flatnonzero(np.asarray(pc.fill_null(pc.greater_equal(pc.utf8_length(distinct), SHORTEST), False),
                                     dtype=bool))
    if not len(long):
        return long
    found = np.zeros(len(distinct), dtype=bool)
    found[long] = _candidates(distinct.take(pa.array(long)))
    if not found.any():
        return np.flatnonzero(found)
    indices = np.asarray(pc.fill_null(encoded.indices, len(distinct)), dtype=np.int64)
    return np.flatnonzero(np.append(found, False)[indices])


def _map_text(frame: pd.DataFrame, change) -> pd.DataFrame:
    """`frame` with `change` applied to each text cell that may hold a number (found in bulk, `_candidate_rows`):
    the same frame as mapping every cell, with Python called only on the few candidate cells. A categorical
    column has its categories changed."""
    changed = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):  # its categories, each once
            categories = pd.Series(column.cat.categories.astype(object))
            masked = _map_text(pd.DataFrame({"c": categories}), change)["c"]
            if not masked.equals(categories):
                codes = column.cat.codes.to_numpy()
                values = np.where(codes >= 0, masked.to_numpy(dtype=object)[codes], None)
                changed[name] = pd.Series(pd.Categorical(values), index=column.index)
            continue
        if not (column.dtype == object or pd.api.types.is_string_dtype(column)):
            continue
        hits = _candidate_rows(_text_cells(column))
        if not len(hits):
            continue
        values = column.to_numpy(dtype=object, copy=True)
        values[hits] = [change(v) if isinstance(v, str) else v for v in values[hits]]
        changed[name] = pd.Series(values, index=column.index, dtype=None if column.dtype == object else "string")
    return frame.assign(**changed) if changed else frame


def mask_id_numbers(ids: pd.Series) -> pd.Series:
    """A column of checked ID numbers masked as `mask_text` masks one (first 6 and last 4 kept), in bulk."""
    text = pa.array(ids.astype(object), pa.string())
    short = pc.equal(pc.utf8_length(text), 15)  # a first-generation number: its last 3 digits are kept
    masked = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 6),
                                         pc.if_else(short, "******", "********"),
                                         pc.if_else(short, pc.utf8_slice_codeunits(text, -3),
                                                    pc.utf8_slice_codeunits(text, -4)), "")
    return pd.Series(masked.to_numpy(zero_copy_only=False), index=ids.index, dtype=object)


#: columns the program writes that hold codes, never personal data: a packed trace (hexadecimal, so a run of
#: its digits can look like a phone number) is kept as it is, or it could no longer be decoded
CODES = ("trace",)


def mask_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text columns are masked (columns without a run of 7 digits are left as they are;
    the program's own code columns, `CODES`, are never changed)."""
    codes = [c for c in CODES if c in frame.columns]
    if not codes:
        return _map_text(frame, mask_text)
    masked = _map_text(frame.drop(columns=codes), mask_text)
    return masked.assign(**{c: frame[c] for c in codes})[list(frame.columns)]


def normalize_id_number(text: str) -> str:
    """Separators removed, a trailing x upper-cased."""
    return re.sub(r"[ \-]", "", text.strip()).upper()


def id_number_problem(text: str, today: dt.date | None = None) -> str | None:
    """Why `text` is not a valid identity number (GB 11643: birth date, check digit), or None."""
    number = normalize_id_number(text)
    if re.fullmatch(r"\d{17}[\dX]", number):
        birth = number[6:14]
    elif re.fullmatch(r"\d{15}", number):
        birth = "19" + number[6:12]
    else:
        return "not an identity number (18 digits, the last may be X; or 15 digits) / 不是有效的身份证号码"
    try:
        born = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        return "the birth date does not exist / 出生日期无效"
    if not dt.date(1880, 1, 1) <= born <= (today or dt.date.today()):
        return "the birth date is out of range / 出生日期超出范围"
    if len(number) == 18:
        total = sum(int(d) * w for d, w in zip(number[:17], _WEIGHTS, strict=True))
        if _CHECK[total % 11] != number[17]:
            return "check digit does not match (GB 11643) / 校验码不符"
    return None


def lookup_key(text: str, key: bytes | None = None) -> str:
    """A keyed hash of an identity (HMAC-SHA256 with the store's key): equal numbers give equal keys, and the
    number cannot be recovered or guessed without the key."""
    secret = key if key is not None else os.environ.get(ENV_KEY, "").encode()
    if not secret:
        raise RuntimeError(f"set {ENV_KEY} to keep identity numbers at rest as keyed hashes")
    return hmac.new(secret, normalize_id_number(text).encode(), hashlib.sha256).hexdigest()[:32]


# -- at rest ---------------------------------------------------------------------------------------------

def store_key(database_url: str) -> bytes:
    """The key of a store's keyed hashes: ``POVERTYRULES_KEY`` if set; else a key file — beside a SQLite
    file (``<db>.key``), or ``~/.config/povertyrules/store.key`` — created (mode 0600) on first use."""
    if os.environ.get(ENV_KEY):
        return os.environ[ENV_KEY].encode()
    from pathlib import Path

    if database_url.startswith("sqlite:///") and not database_url.endswith(":memory:"):
        path = Path(database_url.removeprefix("sqlite:///") + ".key")
    else:
        path = Path.home() / ".config" / "povertyrules" / "store.key"
    if not path.exists():  # written whole under a temporary name, then linked: two processes agree on one key
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(os.urandom(32).hex())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text(encoding="ascii").strip().encode()


_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def pseudonym_text(text: str, key: bytes) -> str:
    """`text` as the store keeps it: each identity number as its masked form plus a keyed hash
    (``110105********002X#3f9a…``: the same number always gives the same text, so look-ups work), each
    mobile number masked."""
    folded = text.translate(_FOLD)
    if not _DIGITS.search(folded.replace(" ", "").replace("-", "")):
        return text
    # (found on the folded text: a number typed in full-width digits gets the same key as in ASCII)
    with_ids = _sub_folded(ID_NUMBER, lambda m: f"{_mask_id(m)}#{lookup_key(m.group(0), key)[:16].translate(_LETTERS)}",
                           text)  # letters only: the hash never looks like (part of) a number
    return _sub_folded(PHONE, _mask_phone, with_ids)


def pseudonym_frame(frame: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """`frame` with `pseudonym_text` applied to its text columns (those with a run of 7 digits); the program's
    own code columns (`CODES`, a packed trace) are kept as they are, as in `mask_frame`."""
    codes = [c for c in CODES if c in frame.columns]
    kept = _map_text(frame.drop(columns=codes) if codes else frame, lambda v: pseudonym_text(v, key))
    return kept.assign(**{c: frame[c] for c in codes})[list(frame.columns)] if codes else kept


def pseudonym_table(table: pa.Table, key: bytes) -> pa.Table:
    """`pseudonym_frame` for an Arrow table's string columns."""
    for index, name in enumerate(table.column_names):
        column = table.column(name)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        if not _may_hold_numbers(column):
            continue
        values = [None if v is None else pseudonym_text(v, key) for v in column.to_pylist()]
        table = table.set_column(index, name, pa.array(values, type=column.type))
    return table
