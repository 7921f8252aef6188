"""Masking of phone, ID-card and bank-card numbers inside free text, and the log mask.

One module for the three processes: the gateway (`bot/logs.py`), the action server
(`actions/__init__.py`) and Rasa (`deploy/rasa-logging.yml`, loaded by
`rasa run --logging-config-file`). It needs nothing but the standard library and runs on
Python 3.10 (Rasa's virtualenv), so it must stay free of our dependencies.

What is masked (digits may be full-width; mobiles and landlines may contain spaces or dashes):

- 18-digit ID-card numbers, last character a digit or X: ``110101********123X``
- bank-card numbers, 16–19 digits in one run or in groups of four: ``6222********1234``
- mainland mobiles, with or without +86: ``138****5678``
- landlines with an area code (010-, 0755-, （021）…): ``0755-****5678``

Tracking numbers (`12345-20261121-…`) never look like any of these.

The log mask is a `logging` record factory: every record any logger creates, whichever handler
writes it later (Rasa and rasa-sdk add their own after start-up), has its message and its
traceback masked before a formatter sees them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

_ID_CARD = re.compile(r"(?<![0-9A-Za-z])([1-9]\d{5})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_BANK_CARD = re.compile(r"(?<!\d)(?:\d{16,19}|\d{4}(?:[ -]\d{4}){3}(?:[ -]?\d{1,3})?)(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)?86[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")
_MASKED_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\*{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)([(（]0\d{2,3}[)）]|0\d{2,3}[ -]?)\d{3,4}[ -]?(\d{4})(?!\d)")


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


def mask_text(text: str) -> str:
    """`text` with every phone, ID-card and bank-card number masked (see the module doc)."""
    if not text or not any(ch.isdigit() for ch in text):
        return text
    text = text.translate(_FULLWIDTH)
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    text = _BANK_CARD.sub(_card, text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


def mobiles_in(text: str) -> list[str]:
    """Every mainland mobile number in `text`, as 11 digits, in order (what `mask_text` hides)."""
    text = _ID_CARD.sub("", (text or "").translate(_FULLWIDTH))
    text = _BANK_CARD.sub("", text)
    return [re.sub(r"\D", "", m.group(0))[-11:] for m in _MOBILE.finditer(text)]


def masked_mobile_in(text: str) -> str | None:
    """The first masked mobile (`138****5678`, as the gateway sends it to Rasa) in `text`."""
    match = _MASKED_MOBILE.search(text or "")
    return f"{match.group(1)}****{match.group(2)}" if match else None


def mask_phone(phone: str) -> str:
    """A phone number shown without its middle: 138****5678."""
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


def _mask_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        rendered = record.getMessage()
    except Exception:  # a broken format string: leave it to the handler to report
        return record
    masked = mask_text(rendered)
    if masked != rendered:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)
    return record


class MaskingFilter(logging.Filter):
    """A handler filter doing the same as the record factory (for logging config files)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


def install_log_mask() -> None:
    """Mask every log record this process creates from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "masks_personal_data", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _mask_record(current(*args, **kwargs))

    masking: Callable[..., logging.LogRecord] = factory
    masking.masks_personal_data = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masking)


def log_mask_filter() -> MaskingFilter:
    """`()` factory for `logging.config.dictConfig`: installs the record factory and returns a
    filter, so a logging config file (Rasa's `--logging-config-file`) turns the mask on."""
    install_log_mask()
    return MaskingFilter()
