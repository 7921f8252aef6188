"""Answers citizen messages that were stored but never answered (bot/router.py, store/claims.py).

A message stays `received` when the process answering it died or failed after storing it.
Every SWEEP_SECONDS each gateway process looks for messages whose claim is older than
`answer_within_seconds` (or was released) and claims them one by one with a conditional
UPDATE, so with several replicas each message is taken by exactly one. The claimed turn is
answered again (from Rasa's tracker if Rasa completed it, else by asking Rasa again) and the
answer goes out through the channel's push path; after `answer_max_tries` claims the citizen
is told sorry and handed to an agent instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import DB, ROUTER
from store import claims
from store.models import utcnow

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
BATCH = 20


class Sweeper:
    """One per gateway process."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def run(self) -> None:
        """Sweep until cancelled."""
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep of unanswered messages failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def sweep(self) -> int:
        """Answer the messages nobody is answering; returns how many this process answered."""
        router = self.app[ROUTER]
        async with self.app[DB].session() as s:
            found = await claims.unanswered(s, utcnow() - router.answer_within, BATCH)
        answered = 0
        for message_id in found:
            try:
                if await router.rerun(message_id):
                    answered += 1
                    log.info("unanswered message %s answered by the sweeper", message_id)
            except Exception:
                log.exception("answering message %s failed; it is swept again later", message_id)
        return answered


SWEEPER = web.AppKey("sweeper", Sweeper)


async def _sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    sweeper = Sweeper(app)
    app[SWEEPER] = sweeper
    task = asyncio.create_task(sweeper.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    """Run the sweeper for the lifetime of the app."""
    app.cleanup_ctx.append(_sweeper_ctx)
