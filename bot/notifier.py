"""Delivers outbox notifications: work-order status pushes to every channel the citizen uses,
hand-off changes to live consoles, and the periodic 督办 sweep.

At least once per channel: a row is marked delivered only after every channel was tried and
none failed in a way that may pass. A per-channel key in the bus (`notified:<row>:<identity>`),
set only once that channel has taken the notice (or refused it for good), keeps a retry of the
row from telling a channel that was already told; a process killed in the middle of a push
leaves no key, so the push is made again.

A status push carries its structured form (`StatusNotice`: tracking number, status, time, lookup
page) so a platform that refuses free text outside its reply window (WeChat) can send a template
instead. What happens when a channel does not deliver depends on why (DeliveryError.retry):

- transient (network error, timeout, flood limit, the platform's 5xx or "system busy"): the
  row is left undelivered and tried again, with a backoff counted from its last attempt, for
  `notify_retry_hours` after it was written; only the channels not told yet are tried again.
  Then it is given up on (`gave_up_at`) and shows on the supervisor board. The notice is
  stored in the citizen's history once: the retry re-sends the message stored by the first
  attempt (Router.push `key`), which is `failed` until a retry gets it through.
- permanent (blocked bot, unsubscribed follower, no template configured): it does not hold the
  row back for the others: the stored message is marked `failed` (Router.push) and the row's
  `last_error` names the channels that were not reached, while the row itself counts as
  delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import or_, select, update

from bot.keys import BUS, CIPHER, DB, ROUTER, SETTINGS
from bot.messages import StatusNotice
from bot.router import Delivery
from bot.status_messages import status_reply
from store import lifecycle, outbox, work_orders
from store.bus import LockTimeout
from store.models import ChannelIdentity, Conversation, Department, Outbox, WorkOrder, utcnow
from store.outbox import WORK_ORDER_STATUS

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
SWEEP_SECONDS = 60.0
BATCH = 50
NOTIFIED_TTL = 7 * 24 * 3600  # how long a channel's "told already" key lives
REFUSED = "refused"  # a dedupe key's value when that channel refused for good
# What a template's status field says; `delay` and `supervision` are events, not statuses.
NOTICE_LABELS = {**lifecycle.STATUS_LABELS, "delay": "延期办理", "supervision": "已启动督办"}


def lookup_url(public_base_url: str, tracking_no: str | None = None) -> str | None:
    """The public lookup page (with the tracking number filled in when given); None while the
    gateway's address is only a loopback one. The number alone reveals nothing: the page
    still asks for the phone's last 4 digits."""
    parts = urlsplit(public_base_url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or host == "localhost":
        return None
    try:
        if ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a domain name
    page = public_base_url.strip().rstrip("/") + "/lookup"
    return f"{page}?{urlencode({'no': tracking_no})}" if tracking_no else page


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


Backoff = Callable[[int], timedelta]


def exponential_backoff(attempts: int) -> timedelta:
    """How long after its last attempt a row that failed `attempts` times is due again."""
    return timedelta(seconds=min(2**attempts, 300))


class RetryLater(Exception):
    """Some channel failed in a way that may pass: the row stays undelivered and is retried."""


class Notifier:
    """One per gateway process; a bus lock keeps deliveries to one process at a time.

    `backoff` decides when a failed row is due again (tests pass one without delay);
    `retry_for` how long after it was written a row keeps being tried (default: the
    `notify_retry_hours` setting).
    """

    def __init__(
        self,
        app: web.Application,
        backoff: Backoff = exponential_backoff,
        retry_for: timedelta | None = None,
    ) -> None:
        self.app = app
        self.backoff = backoff
        self.retry_for = retry_for
        self._last_sweep = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the polling loop in the background."""
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop the polling loop, wherever it is (shutdown; a push under way is cut off, as
        when the process is killed, and made again by the next attempt)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

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
        retry_for = self.retry_for or timedelta(hours=self.app[SETTINGS].notify_retry_hours)
        async with db.session() as s:
            # Tried and still failing when the retry period ends: no further attempt.
            expired = await s.execute(
                update(Outbox)
                .where(
                    Outbox.delivered_at.is_(None),
                    Outbox.gave_up_at.is_(None),
                    Outbox.attempts > 0,
                    Outbox.created_at < utcnow() - retry_for,
                )
                .values(gave_up_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if expired.rowcount:
                log.warning(
                    "%s outbox rows given up: still failing after %s", expired.rowcount, retry_for
                )
        async with db.session() as s:
            rows = list(
                (
                    await s.execute(
                        select(Outbox)
                        .where(
                            Outbox.delivered_at.is_(None),
                            Outbox.gave_up_at.is_(None),
                            or_(
                                Outbox.next_attempt_at.is_(None), Outbox.next_attempt_at <= utcnow()
                            ),
                        )
                        .order_by(Outbox.id)
                        .limit(BATCH)
                    )
                ).scalars()
            )
        for row in rows:
            failed = False
            try:
                note = await self._deliver(row)
            except RetryLater as exc:  # some channel may take it later
                log.info("outbox %s (%s) to be retried: %s", row.id, row.topic, exc)
                note, failed = str(exc), True
            except Exception as exc:  # keep going; retried with backoff
                log.warning("outbox %s (%s) failed: %s", row.id, row.topic, exc)
                note, failed = f"{type(exc).__name__}: {exc}", True
            async with db.session() as s:
                r = await s.get_one(Outbox, row.id)
                r.attempts += 1
                r.last_error = note[:500] if note else None
                now = utcnow()
                if not failed:
                    r.delivered_at = now
                elif now - r.created_at >= retry_for:
                    r.gave_up_at = now
                    log.warning(
                        "outbox %s given up after %s attempts: %s", row.id, r.attempts, note
                    )
                else:
                    r.next_attempt_at = now + self.backoff(r.attempts)
        return len(rows)

    async def _deliver(self, row: Outbox) -> str | None:
        """Deliver one row; returns a note on channels that were not reached (None: all were).

        Raises RetryLater when a channel may still be reached by trying again.
        """
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
        event = {**event, "note": outbox.note_of(event, self.app[CIPHER])}
        reply = status_reply(event, dept.name if dept else None)
        if reply is None:
            return None
        notice = status_notice(
            event,
            row.created_at,
            settings.timezone,
            lookup_url(settings.public_base_url, order.tracking_no),
        )
        reply = replace(reply, notice=notice)
        undelivered: list[str] = []  # refused for good (on this or an earlier attempt)
        pending: list[str] = []  # failed for now: tried again when the row is retried
        for conversation_id, identity_id, channel in targets:
            target = f"{channel} identity {identity_id}"
            key = f"notified:{row.id}:{identity_id}"
            told = await bus.get(key)
            if told is not None:
                # Settled on an earlier attempt: told, or refused for good.
                if told == REFUSED:
                    undelivered.append(target)
                continue
            try:
                outcome = await router.push(conversation_id, [reply], key=f"outbox:{row.id}")
            except Exception:
                log.exception("status push to %s failed", target)
                outcome = Delivery.RETRY
            if outcome is Delivery.DELIVERED:
                await bus.set(key, "1", NOTIFIED_TTL)  # only now: a killed push is made again
            elif outcome is Delivery.FAILED:
                await bus.set(key, REFUSED, NOTIFIED_TTL)
                undelivered.append(target)
            else:
                pending.append(target)  # not told: the row's next attempt tries again
        if event.get("what") == "resolved":
            await self._start_callback(event["work_order_id"])
        notes = []
        if pending:
            notes.append("retry on: " + ", ".join(pending))
        if undelivered:
            log.info(
                "status of %s not delivered on: %s (kept in their history)",
                order.tracking_no,
                ", ".join(undelivered),
            )
            notes.append("not delivered on: " + ", ".join(undelivered))
        if pending:
            raise RetryLater("; ".join(notes))
        return "; ".join(notes) or None

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
    notifier.start()
    yield
    await notifier.stop()


NOTIFIER = web.AppKey("notifier", Notifier)


def setup(app: web.Application) -> None:
    """Run the notifier for the lifetime of the app."""
    app.cleanup_ctx.append(_notifier_ctx)
