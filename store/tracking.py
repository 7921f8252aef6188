"""Tracking numbers: `12345-YYYYMMDD-` + 8 random Crockford base32 chars + 1 check char.

The random part comes from `secrets` (40 bits), so numbers cannot be enumerated; the check
character (Luhn mod 32 over the same alphabet, so it is always typeable) catches every single
wrong character and most swapped neighbours before any database hit.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
PREFIX = "12345"
RANDOM_LEN = 8
_PATTERN = re.compile(
    rf"(?<![0-9A-Z]){PREFIX}-?(\d{{8}})-?([{ALPHABET}]{{{RANDOM_LEN}}})([{ALPHABET}])(?![0-9A-Z])"
)
# Letters citizens confuse, mapped the Crockford way.
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0"})


def _check_char(body: str) -> str:
    """Luhn mod N check character (N = 32)."""
    n = len(ALPHABET)
    total, factor = 0, 2
    for ch in reversed(body):
        addend = factor * ALPHABET.index(ch)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return ALPHABET[(n - total % n) % n]


def new_tracking_no(today: date) -> str:
    """A fresh tracking number for an order filed on `today`."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LEN))
    digits = today.strftime("%Y%m%d")
    return f"{PREFIX}-{digits}-{body}{_check_char(digits + body)}"


def normalize(raw: str) -> str | None:
    """Canonical form of what a citizen typed, or None if it is not a valid number.

    Accepts lower case, missing or extra dashes/spaces, full-width characters and the letters
    O/I/L for 0/1/1. A number whose check character does not match is rejected here.
    """
    if not raw:
        return None
    text = raw.upper().translate(str.maketrans("０１２３４５６７８９－—", "0123456789--"))
    text = re.sub(r"[\s_]", "", text)
    m = _PATTERN.search(text.translate(_CONFUSABLE)) or _PATTERN.search(text)
    if not m:
        return None
    digits, body, check = m.groups()
    if _check_char(digits + body) != check:
        return None
    return f"{PREFIX}-{digits}-{body}{check}"


def find_in_text(text: str) -> str | None:
    """The first valid tracking number inside free text."""
    return normalize(text)
