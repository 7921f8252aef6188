"""Logging that never writes a citizen's phone or ID-card number in clear."""

from __future__ import annotations

import logging

from store.crypto import mask_text


class MaskingFilter(logging.Filter):
    """Masks mobile and ID numbers in every record's rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            rendered = record.getMessage()
        except Exception:
            return True
        masked = mask_text(rendered)
        if masked != rendered:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Root logging with the masking filter on every handler."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskingFilter())
