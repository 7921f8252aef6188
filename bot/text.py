"""Normalising what citizens type before NLU sees it (the stored text stays as written)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

MAX_TEXT_CHARS = 2000


@lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc

        return opencc.OpenCC("t2s")
    except Exception:  # pragma: no cover - opencc is a declared dependency
        return None


def clean_text(raw: str) -> str:
    """Strip control characters and surrounding space; cap the length."""
    text = "".join(ch for ch in raw if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    return text[:MAX_TEXT_CHARS]


def for_nlu(text: str) -> str:
    """Traditional → simplified characters, full-width ASCII → half-width."""
    text = unicodedata.normalize("NFKC", text)
    converter = _t2s()
    return converter.convert(text) if converter else text
