"""Redis when REDIS_URL is set, else a single-process in-memory stand-in.

Used for dedupe keys, rate limits, locks, short-lived values (link codes, cached replies) and
pub/sub fan-out between gateway processes. Anything that must survive a crash goes to the
database (outbox), never only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from store.errors import LockTimeout

MAX_CONNECTIONS = 100  # per process; pub/sub subscriptions hold one each
POOL_WAIT_SECONDS = 10.0
CLOSE_SECONDS = 2.0  # unsubscribing and closing a subscription at shutdown


class Bus(Protocol):
    """What the gateway and the action server need from Redis."""

    async def set_nx(self, key: str, value: str, ttl: float) -> bool:
        """Set `key` only if absent; True if this call set it."""

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Set `key`, optionally expiring after `ttl` seconds."""

    async def get(self, key: str) -> str | None:
        """The value of `key`, or None."""

    async def delete(self, key: str) -> None:
        """Remove `key`."""

    async def incr(self, key: str, ttl: float) -> int:
        """Increment a counter that expires `ttl` seconds after its first increment.

        Atomic: the count returned includes this increment and no other caller sees the same
        value (store/limits.py builds its race-free limits on this).
        """

    async def count_attempt(
        self, counters: Sequence[tuple[str, int, float]]
    ) -> tuple[bool, tuple[int, ...]]:
        """Count one attempt on every (key, max_count, ttl) counter, all or none, atomically.

        Each count includes this attempt. If any would exceed its max_count, nothing is
        counted and the first value is False. A counter expires `ttl` seconds after its first
        count (a fixed window).
        """

    async def decr(self, key: str) -> int:
        """Take one back from a live counter, keeping its expiry; 0 (and no key) if absent.

        Never creates a counter, so a refund after the window ended cannot leave a key
        without expiry behind; a counter that reaches 0 is removed.
        """

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Send `message` to every subscriber of `topic`."""

    def subscribe(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        """Messages published to `topic` from now on."""

    def lock(self, name: str, ttl: float = 10.0, wait: float = 10.0) -> Any:
        """An async context manager holding a named lock."""

    async def ping(self) -> bool:
        """True if the backend answers."""

    async def close(self) -> None:
        """Release connections."""


class MemoryBus:
    """In-process implementation with the same semantics (expiry, NX, counters, pub/sub).

    No method awaits between reading and writing a key, so counters are atomic for every task
    on the process's event loop (the only users of this stand-in).
    """

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}
        self._subs: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _alive(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    async def set_nx(self, key: str, value: str, ttl: float) -> bool:
        if self._alive(key) is not None:
            return False
        self._data[key] = (value, time.monotonic() + ttl)
        return True

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._data[key] = (value, None if ttl is None else time.monotonic() + ttl)

    async def get(self, key: str) -> str | None:
        return self._alive(key)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl: float) -> int:
        current = self._alive(key)
        if current is None:
            self._data[key] = ("1", time.monotonic() + ttl)
            return 1
        value = int(current) + 1
        self._data[key] = (str(value), self._data[key][1])
        return value

    async def count_attempt(
        self, counters: Sequence[tuple[str, int, float]]
    ) -> tuple[bool, tuple[int, ...]]:
        now = time.monotonic()
        current = [(key, int(self._alive(key) or 0)) for key, _, _ in counters]
        counts = tuple(value + 1 for _, value in current)
        if any(count > limit for count, (_, limit, _) in zip(counts, counters, strict=True)):
            return False, counts
        for (key, _, ttl), count in zip(counters, counts, strict=True):
            expires = self._data[key][1] if count > 1 else now + ttl
            self._data[key] = (str(count), expires)
        return True, counts

    async def decr(self, key: str) -> int:
        # No await between read and write: atomic with respect to other tasks on this loop.
        current = self._alive(key)
        if current is None:
            return 0
        value = int(current) - 1
        if value <= 0:
            del self._data[key]
            return 0
        self._data[key] = (str(value), self._data[key][1])
        return value

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        for queue in list(self._subs[topic]):
            queue.put_nowait(message)

    async def subscribe(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subs[topic].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subs[topic].discard(queue)

    @asynccontextmanager
    async def lock(self, name: str, ttl: float = 10.0, wait: float = 10.0) -> AsyncIterator[None]:
        lock = self._locks[name]
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the lock is granted, and the cancelled task runs on.
            async with asyncio.timeout(wait):
                await lock.acquire()
        except TimeoutError as exc:
            raise LockTimeout(name) from exc
        try:
            yield
        finally:
            lock.release()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


# All-or-none attempt on several counters: ARGV holds (max_count, ttl_ms) per key.
_COUNT_ATTEMPT = """
local counts, ok = {}, 1
for i, key in ipairs(KEYS) do
  counts[i] = (tonumber(redis.call('get', key)) or 0) + 1
  if counts[i] > tonumber(ARGV[2 * i - 1]) then ok = 0 end
end
if ok == 1 then
  for i, key in ipairs(KEYS) do
    redis.call('incr', key)
    if redis.call('pttl', key) < 0 then redis.call('pexpire', key, ARGV[2 * i]) end
  end
end
table.insert(counts, 1, ok)
return counts
"""

# DECR that never creates a key (a refund after expiry would leave a counter without TTL).
_DECR_EXISTING = (
    "if redis.call('exists', KEYS[1]) == 0 then return 0 end "
    "local v = redis.call('decr', KEYS[1]) "
    "if v <= 0 then redis.call('del', KEYS[1]) return 0 end "
    "return v"
)


class RedisBus:
    """Redis implementation (redis-py asyncio)."""

    def __init__(self, url: str, prefix: str = "h12345:") -> None:
        import redis.asyncio as redis

        # A blocking pool: a burst of requests waits for a free connection instead of failing
        # with MaxConnectionsError at the 101st concurrent command (redis-py's default pool).
        pool = redis.BlockingConnectionPool.from_url(
            url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS
        )
        self._redis = redis.Redis.from_pool(pool)
        self._count_attempt = self._redis.register_script(_COUNT_ATTEMPT)  # EVALSHA
        self._decr_existing = self._redis.register_script(_DECR_EXISTING)
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def set_nx(self, key: str, value: str, ttl: float) -> bool:
        return bool(await self._redis.set(self._k(key), value, nx=True, px=int(ttl * 1000)))

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._redis.set(self._k(key), value, px=None if ttl is None else int(ttl * 1000))

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._k(key))
        return value.decode() if isinstance(value, bytes) else value

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._k(key))

    async def incr(self, key: str, ttl: float) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._k(key))
            pipe.pexpire(self._k(key), int(ttl * 1000), nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def count_attempt(
        self, counters: Sequence[tuple[str, int, float]]
    ) -> tuple[bool, tuple[int, ...]]:
        keys = [self._k(key) for key, _, _ in counters]
        args = [str(v) for _, limit, ttl in counters for v in (limit, int(ttl * 1000))]
        counted, *counts = await self._count_attempt(keys=keys, args=args)
        return bool(counted), tuple(int(c) for c in counts)

    async def decr(self, key: str) -> int:
        return int(await self._decr_existing(keys=[self._k(key)]))

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self._k(topic), json.dumps(message, ensure_ascii=False))

    async def subscribe(self, topic: str) -> AsyncIterator[dict[str, Any]]:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._k(topic))
        try:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    yield json.loads(item["data"])
        finally:
            # Bounded: on shutdown the connection may be mid-read or gone, and an unsubscribe
            # that never hears back must not keep the process from stopping.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await pubsub.unsubscribe(self._k(topic))
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await pubsub.aclose()

    @asynccontextmanager
    async def lock(self, name: str, ttl: float = 10.0, wait: float = 10.0) -> AsyncIterator[None]:
        token = uuid.uuid4().hex
        key = self._k("lock:" + name)
        deadline = time.monotonic() + wait
        while not await self._redis.set(key, token, nx=True, px=int(ttl * 1000)):
            if time.monotonic() > deadline:
                raise LockTimeout(name)
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            # Release only our own lock (compare-and-delete).
            await self._redis.eval(
                "if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) else return 0 end",
                1,
                key,
                token,
            )

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


def create_bus(redis_url: str | None, prefix: str = "h12345:") -> Bus:
    """Redis if a URL is given, else the in-memory stand-in."""
    return RedisBus(redis_url, prefix) if redis_url else MemoryBus()
