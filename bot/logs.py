"""Logging that never writes a citizen's phone, ID-card or bank-card number in clear."""

from __future__ import annotations

import logging

from store.masking import install_log_mask


def configure_logging(level: str = "INFO") -> None:
    """Root logging with the shared log mask (store/masking.py) installed."""
    install_log_mask()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
