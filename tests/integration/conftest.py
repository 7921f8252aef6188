"""Fakes of outside services shared by the integration suites, declared once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.telegram_api import FakeTelegramAPI


@pytest.fixture
async def tg_api() -> AsyncIterator[FakeTelegramAPI]:
    """The fake api.telegram.org on loopback."""
    fake = FakeTelegramAPI()
    await fake.start()
    yield fake
    await fake.close()
