"""Delivers outbox notifications: work-order status pushes to every channel the citizen uses,
hand-off changes to live consoles, and the periodic 督办 sweep.

At least once: a row is marked delivered only after every channel was tried; a per-channel
dedupe key in the bus keeps a retry from telling a citizen the same thing twice.

A status push carries its structured form (`StatusNotice`: tracking number, status, time, lookup
page) so a platform that refuses free text outside its reply window (WeChat) can send a template
instead. A channel that still does not deliver does not hold the row back for the others: the
stored message is marked `failed` (Router.push) and the row's `last_error` names the channels
that were not reached, while the row itself counts as delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from bot.keys import BUS, DB, ROUTER, SETTINGS
from bot.messages import StatusNotice
from bot.status_messages import status_reply
from store import lifecycle, work_orders
from store.bus import LockTimeout
from store.models import ChannelIdentity, Conversation, Department, Outbox, WorkOrder, utcnow
from store.outbox import WORK_ORDER_STATUS

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
SWEEP_SECONDS = 60.0
MAX_ATTEMPTS = 8
BATCH = 50
# What a template's status field says; `delay` and `supervision` are events, not statuses.
NOTICE_LABELS = {**lifecycle.STATUS_LABELS, "delay": "延期办理", "supervision": "已启动督办"}


def lookup_url(public_base_url: str) -> str | None:
    """The public lookup page; None while the gateway's address is only a loopback one."""
    parts = urlsplit(public_base_url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or host == "localhost":
        return None
    try:
        if ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a domain name
    return public_base_url.strip().rstrip("/") + "/lookup"


def status_notice(event: dict[str, Any], at: datetime, tz: str, url: str | None) -> StatusNotice:
    """The structured form of one `work_order.status` event, times in the hotline's zone."""
    what = str(event.get("what") or event.get("status") or "")
    local = at.astimezone(ZoneInfo(tz))
    return StatusNotice(
        tracking_no=str(event["tracking_no"]),
        status=NOTICE_LABELS.get(what, what),
        time=f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}",
        url=url,
    )


class Notifier:
    """One per gateway process; a bus lock keeps deliveries to one process at a time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._last_sweep = 0.0

    async def run(self) -> None:
        """Poll the outbox until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.deliver_pending()
                if loop.time() - self._last_sweep > SWEEP_SECONDS:
                    self._last_sweep = loop.time()
                    await self.sweep_overdue()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier iteration failed")
            await asyncio.sleep(POLL_SECONDS)

    async def deliver_pending(self) -> int:
        """Deliver what is due now; returns how many rows were handled."""
        try:
            async with self.app[BUS].lock("notifier", ttl=60, wait=0.1):
                return await self._deliver_batch()
        except LockTimeout:
            return 0  # another gateway process is delivering

    async def _deliver_batch(self) -> int:
        db = self.app[DB]
        async with db.session() as s:
            rows = list(
                (
                    await s.execute(
                        select(Outbox)
                        .where(Outbox.delivered_at.is_(None), Outbox.attempts < MAX_ATTEMPTS)
                        .order_by(Outbox.id)
                        .limit(BATCH)
                    )
                ).scalars()
            )
        for row in rows:
            if not self._due(row):
                continue
            failed = False
            try:
                note = await self._deliver(row)
            except Exception as exc:  # keep going; retried with backoff
                log.warning("outbox %s (%s) failed: %s", row.id, row.topic, exc)
                note, failed = f"{type(exc).__name__}: {exc}", True
            async with db.session() as s:
                r = await s.get_one(Outbox, row.id)
                r.attempts += 1
                r.last_error = note[:500] if note else None
                if not failed:
                    r.delivered_at = utcnow()
        return len(rows)

    @staticmethod
    def _due(row: Outbox) -> bool:
        if row.attempts == 0:
            return True
        backoff = timedelta(seconds=min(2**row.attempts, 300))
        return utcnow() - row.created_at >= backoff

    async def _deliver(self, row: Outbox) -> str | None:
        """Deliver one row; returns a note on channels that were not reached (None: all were)."""
        if row.topic == WORK_ORDER_STATUS:
            return await self._push_status(row)
        # HANDOFF_CHANGED rows are for the console's watcher (bot/console/live.py), which
        # publishes a masked summary to agents; nothing goes to citizens from here.
        return None

    async def _push_status(self, row: Outbox) -> str | None:
        event = row.payload
        db, bus, router = self.app[DB], self.app[BUS], self.app[ROUTER]
        settings = self.app[SETTINGS]
        async with db.session() as s:
            order = await s.get(WorkOrder, event["work_order_id"])
            if order is None or order.citizen_id is None:
                return None
            dept = await s.get(Department, order.department_id) if order.department_id else None
            targets = (
                await s.execute(
                    select(Conversation.id, ChannelIdentity.id, ChannelIdentity.channel)
                    .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
                    .where(
                        ChannelIdentity.citizen_id == order.citizen_id,
                        ChannelIdentity.subscribed.is_(True),
                    )
                )
            ).all()
        reply = status_reply(event, dept.name if dept else None)
        if reply is None:
            return None
        notice = status_notice(
            event, row.created_at, settings.timezone, lookup_url(settings.public_base_url)
        )
        reply = replace(reply, notice=notice)
        undelivered: list[str] = []
        for conversation_id, identity_id, channel in targets:
            key = f"notified:{row.id}:{identity_id}"
            if not await bus.set_nx(key, "1", 7 * 24 * 3600):
                continue  # told already on an earlier attempt
            if not await router.push(conversation_id, [reply]):
                undelivered.append(f"{channel} identity {identity_id}")
        if event.get("what") == "resolved":
            await self._start_callback(event["work_order_id"])
        if not undelivered:
            return None
        log.info(
            "status of %s not delivered on: %s (kept in their history)",
            order.tracking_no,
            ", ".join(undelivered),
        )
        return "not delivered on: " + ", ".join(undelivered)

    async def _start_callback(self, work_order_id: int) -> None:
        """After telling the citizen it is 办结 (with rating buttons), the order is in 回访."""
        async with self.app[DB].session() as s:
            order = await work_orders.by_id(s, work_order_id)
            if order.status == "resolved":
                await lifecycle.transition(s, order, "callback", "system", "已向市民发送满意度回访")

    async def sweep_overdue(self) -> list[str]:
        """Flag overdue open orders for 督办."""
        async with self.app[DB].session() as s:
            return await work_orders.flag_overdue(s)


async def _notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    notifier = Notifier(app)
    app[NOTIFIER] = notifier
    task = asyncio.create_task(notifier.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


NOTIFIER = web.AppKey("notifier", Notifier)


def setup(app: web.Application) -> None:
    """Run the notifier for the lifetime of the app."""
    app.cleanup_ctx.append(_notifier_ctx)
