"""Resident identity-card numbers (GB 11643) and phone numbers: checking and masking.

An 18-digit number carries a check digit (ISO 7064 MOD 11-2) and a birth date; a 15-digit (first-generation)
number carries a birth date in the 1900s. A number saved by a spreadsheet as a number has lost its last digits
(5.22301199001011E+17): it is reported as such, never read as a different number. Masking keeps the first 6
and last 4 digits of an ID number and the first 3 and last 4 of a mobile number, in every written form.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
CHECK = np.array(list("10X98765432"))
SCIENTIFIC = r"^\d(\.\d+)?E\+?\d+$"

ID_FORMS = re.compile(r"(?<![\dA-Za-z])(\d{6})[- ]?(\d{8}|\d{6})[- ]?(\d{3}[\dXx])(?![\dA-Za-z])")
ID_15 = re.compile(r"(?<!\d)(\d{6})(\d{5})(\d{4})(?!\d)")
PHONE_FORMS = re.compile(r"(?<!\d)((?:\+|00)?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")


def mask_identities(text: str) -> str:
    """`text` with every ID-card and mobile number masked (110101********1234, 138****5678)."""
    if not text:
        return text
    text = ID_FORMS.sub(lambda m: f"{m.group(1)}********{m.group(3)}", text)
    text = ID_15.sub(lambda m: f"{m.group(1)}*****{m.group(3)}", text)
    return PHONE_FORMS.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)


def mask_id_numbers(ids: pd.Series) -> pd.Series:
    """A column of checked ID numbers masked as `mask_identities` masks one (first 6 and last 4 kept), in bulk."""
    text = pa.array(ids.astype(object), pa.string())
    length = pc.utf8_length(text)
    stars = pc.if_else(pc.equal(length, 15), "*****", "********")
    masked = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 6), stars,
                                         pc.utf8_slice_codeunits(text, -4), "")
    return pd.Series(masked.to_numpy(zero_copy_only=False), index=ids.index, dtype=object)


def id_number_problems(text: pd.Series) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Masks of bad ID numbers in `text` (upper-cased, NFKC), each with its message in Chinese and English."""
    present = text.notna().to_numpy()
    s = text.fillna("").astype(str)
    scientific = present & s.str.fullmatch(SCIENTIFIC).to_numpy()
    form18 = s.str.fullmatch(r"[0-9]{17}[0-9X]").to_numpy()
    form15 = s.str.fullmatch(r"[0-9]{15}").to_numpy()
    shape = present & ~scientific & ~form18 & ~form15
    check = np.zeros(len(s), bool)
    birth_bad = np.zeros(len(s), bool)
    if form18.any():
        digits = (np.frombuffer(s[form18].str[:17].to_numpy().astype("S17").tobytes(), dtype=np.uint8)
                  .reshape(-1, 17).astype(np.int64) - 48)
        expected = CHECK[(digits * WEIGHTS).sum(axis=1) % 11]
        check[form18] = expected != s[form18].str[17].to_numpy()
        birth_bad[form18] = pd.to_datetime(s[form18].str[6:14], format="%Y%m%d", errors="coerce").isna().to_numpy()
    if form15.any():
        birth_bad[form15] = pd.to_datetime("19" + s[form15].str[6:12], format="%Y%m%d",
                                           errors="coerce").isna().to_numpy()
    check &= ~birth_bad
    return ([scientific, shape, birth_bad, check],
            ["证件号码被存为数字，末几位已丢失（请将该列设为文本后重新导出）", "证件号码应为18位（或15位）",
             "证件号码中的出生日期无效", "证件号码校验码不符（GB 11643）"],
            ["the ID number was saved as a number and has lost its last digits (export the column as text)",
             "an ID number has 18 (or 15) digits", "the birth date in the ID number is not a date",
             "the ID number's check digit is wrong (GB 11643)"])


def valid_id(number17: str) -> str:
    """An 18-digit number from its first 17 digits (for synthetic data and tests)."""
    return number17 + CHECK[int((np.array(list(number17), dtype=int) * WEIGHTS).sum() % 11)]
