"""Live updates for consoles: one bus subscription per process fanned out to every socket, and
the watcher that turns hand-off changes (from any process) into console events, auto-assigns,
tells citizens their place in the queue and expires hand-offs nobody took."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot.console import notice
from bot.console.views import handoff_summary, masked_message
from bot.keys import BUS, DB, ROUTER, SETTINGS
from bot.messages import Reply
from bot.router import CONSOLE_TOPIC
from store import assignment
from store.bus import LockTimeout
from store.models import Agent, Handoff, Outbox, utcnow
from store.outbox import HANDOFF_CHANGED

log = logging.getLogger(__name__)

PRIVATE_TOPIC = "console.private"  # hand-off events and internal notes: consoles only
POLL_SECONDS = 1.0
EXPIRE_EVERY = 10.0


class Hub:
    """Fan-out of console events to the sockets of this process."""

    def __init__(self) -> None:
        self.clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self._ready = asyncio.Event()
        self._probe = secrets.token_hex(8)
        self._seen_probes: set[str] = set()

    def add(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives every console event from now on."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self.clients.add(queue)
        return queue

    def remove(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering to `queue`."""
        self.clients.discard(queue)

    def dispatch(self, event: dict[str, Any]) -> None:
        """Give `event` to every socket (a socket too slow to keep up loses old events).

        Raw outbox payloads on the shared topic (`{"type":"handoff","handoff":"<id>",...}`, as
        the notifier relays them) are skipped: the watcher publishes the full summary instead.
        """
        if event.get("type") == "handoff" and not isinstance(event.get("handoff"), dict):
            return
        if event.get("type") == "message" and isinstance(event.get("message"), dict):
            event = {**event, "message": masked_message(event["message"])}
        for queue in list(self.clients):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def listen(self, app: web.Application, topic: str) -> None:
        """Forward one bus topic until cancelled."""
        while True:
            try:
                async for event in app[BUS].subscribe(topic):
                    if event.get("type") == "_probe":
                        self._seen_probes.add(f"{topic}:{event.get('id')}")
                        continue
                    self.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console subscription to %s failed; retrying", topic)
                await asyncio.sleep(1)

    async def wait_ready(self, app: web.Application, topics: tuple[str, ...]) -> None:
        """Return once every subscription receives messages (probe until seen, ≤5 s)."""
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            for t in topics:
                await app[BUS].publish(t, {"type": "_probe", "id": self._probe})
            await asyncio.sleep(0.02)
            if all(f"{t}:{self._probe}" in self._seen_probes for t in topics):
                return
        log.warning("console subscriptions not confirmed within 5 s")


HUB = web.AppKey("console_hub", Hub)


async def publish_handoff(app: web.Application, handoff: Handoff, change: str) -> None:
    """Tell every console about a hand-off's new state."""
    async with app[DB].session() as s:
        h = await s.get_one(Handoff, handoff.id)
        summary = await handoff_summary(s, h)
    await app[BUS].publish(PRIVATE_TOPIC, {"type": "handoff", "change": change, "handoff": summary})


async def tell_citizen(app: web.Application, conversation_id: int, reply: Reply) -> None:
    """Deliver a system message to the citizen (stored even if the channel cannot push)."""
    try:
        await app[ROUTER].push(conversation_id, [reply])
    except Exception:
        log.exception("could not tell conversation %s about its hand-off", conversation_id)


class Watcher:
    """Runs every second in each gateway process; bus keys make each action happen once."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.cursor = 0
        self._last_expiry = 0.0
        self.stopping = asyncio.Event()

    async def start_cursor(self) -> None:
        """Begin with changes of the last minute (so a restart misses nothing recent)."""
        async with self.app[DB].session() as s:
            recent = (
                await s.execute(
                    select(func.min(Outbox.id)).where(
                        Outbox.topic == HANDOFF_CHANGED,
                        Outbox.created_at > utcnow() - timedelta(minutes=1),
                    )
                )
            ).scalar_one()
            latest = (await s.execute(select(func.max(Outbox.id)))).scalar_one()
        self.cursor = (recent - 1) if recent else (latest or 0)

    async def run(self) -> None:
        """Loop until `stopping` is set (stops between ticks, never inside a transaction)."""
        await self.start_cursor()
        while not self.stopping.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("console watcher tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), POLL_SECONDS)

    async def tick(self) -> None:
        """One round: auto-assign, publish changes, notify new hand-offs, expire stale ones."""
        settings = self.app[SETTINGS]
        if settings.console_auto_assign:
            await self.auto_assign()
        await self.publish_changes()
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_expiry >= EXPIRE_EVERY:
            self._last_expiry = loop_time
            await self.expire()

    async def auto_assign(self) -> None:
        """Give pending hand-offs to the least-loaded online agents."""
        try:
            async with self.app[BUS].lock("console:auto_assign", ttl=10, wait=0.05):
                async with self.app[DB].session() as s:
                    done = await assignment.auto_assign(s)
                    joined = [
                        (h.conversation_id, (await s.get_one(Agent, h.agent_id)).display_name)
                        for h in done
                    ]
        except LockTimeout:
            return
        for conversation_id, name in joined:
            await tell_citizen(self.app, conversation_id, notice.agent_joined(name))

    async def publish_changes(self) -> None:
        """Console events for every hand-off change since the cursor, once across processes."""
        bus = self.app[BUS]
        async with self.app[DB].session() as s:
            rows = list(
                (
                    await s.execute(
                        select(Outbox)
                        .where(Outbox.topic == HANDOFF_CHANGED, Outbox.id > self.cursor)
                        .order_by(Outbox.id)
                        .limit(200)
                    )
                ).scalars()
            )
        for row in rows:
            self.cursor = max(self.cursor, row.id)
            # The timestamp keeps keys apart if a database is ever recreated with the same ids.
            stamp = int(row.created_at.timestamp() * 1e6)
            if not await bus.set_nx(f"console:outbox:{row.id}:{stamp}", "1", ttl=3600):
                continue
            async with self.app[DB].session() as s:
                handoff = (
                    await s.execute(
                        select(Handoff).where(Handoff.public_id == row.payload["handoff"])
                    )
                ).scalar_one_or_none()
                if handoff is None:
                    continue
                summary = await handoff_summary(s, handoff)
                reply = None
                fresh = row.payload.get("from") is None and handoff.state == "pending"
                if (
                    fresh
                    and not assignment.was_noticed(handoff)
                    and await bus.set_nx(notice.NOTICE_KEY.format(handoff.public_id), "1", 86400)
                ):
                    reply = await notice.handoff_notice(
                        s, handoff, utcnow(), settings=self.app[SETTINGS]
                    )
                    assignment.mark_noticed(handoff)
            change = "opened" if row.payload.get("from") is None else row.payload.get("to", "")
            await bus.publish(
                PRIVATE_TOPIC, {"type": "handoff", "change": change, "handoff": summary}
            )
            if reply is not None:
                await tell_citizen(self.app, handoff.conversation_id, reply)

    async def expire(self) -> None:
        """Expire pending hand-offs older than the configured timeout and tell the citizens."""
        timeout = timedelta(minutes=self.app[SETTINGS].handoff_timeout_minutes)
        try:
            async with self.app[BUS].lock("console:expire", ttl=30, wait=0.05):
                async with self.app[DB].session() as s:
                    expired = await assignment.expire_stale(s, timeout)
        except LockTimeout:
            return
        for handoff in expired:
            await tell_citizen(self.app, handoff.conversation_id, notice.expired())


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the hub's subscriptions and the watcher."""
    from bot.console.auth import init_secret

    init_secret(app)
    hub = Hub()
    app[HUB] = hub
    topics = (CONSOLE_TOPIC, PRIVATE_TOPIC)
    tasks = [asyncio.create_task(hub.listen(app, t)) for t in topics]
    await hub.wait_ready(app, topics)
    watcher = Watcher(app)
    watching = asyncio.create_task(watcher.run())
    yield
    # Let the watcher finish its tick: cancelling a database call midway can wedge the pool.
    watcher.stopping.set()
    try:
        await asyncio.wait_for(asyncio.shield(watching), 10)
    except TimeoutError:
        watching.cancel()
    except Exception:
        log.exception("console watcher failed")
    for task in tasks:
        task.cancel()
    # Bounded like the watcher above: shutdown must end even if a subscription hangs.
    await asyncio.wait([watching, *tasks], timeout=10)
