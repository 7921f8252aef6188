"""Attempt limits that hold under concurrency: count first, compare after.

Every guessable check (lookup digits, console passwords, 绑定 codes) and every costly public
endpoint (classify) asks `attempt()` before it does the work. `attempt()` counts the attempt on
one counter per (limit, subject) in one atomic step (`Bus.count_attempt`: a Lua script on
Redis, one uninterrupted step on the in-memory bus) and decides on the counts *including this
attempt*. So 300 parallel guesses cannot all pass a check made before any of them is counted:
at most `max_attempts` of them go on to the comparison.

A counter holds the failures of its window plus the attempts still in flight:

- a refused attempt is not counted at all (all counters or none), so hammering a blocked key
  neither extends nor inflates it, and a refusal by one limit costs nothing on the others;
- an attempt that succeeds calls `Attempt.succeeded()`, which takes its count back (`Bus.decr`):
  a success costs nothing, but it never wipes earlier failures (a requester cannot mix in right
  answers they know to reset the count of their wrong guesses elsewhere);
- an attempt that fails keeps its count until the window (fixed, from the first count) ends.

`reset()` clears one counter outright; only use it where a success proves the requester is
the owner of that counter (the right password for that username from that address).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from store.bus import Bus


@dataclass(frozen=True)
class Limit:
    """At most `max_attempts` counted attempts per subject within `window_seconds`."""

    name: str  # the counter's namespace, e.g. "lookup:requester"
    max_attempts: int
    window_seconds: float

    def key(self, subject: str) -> str:
        """The bus key of this limit's counter for `subject`."""
        return f"limit:{self.name}:{subject}"


@dataclass
class Attempt:
    """One counted attempt; `allowed` is False when any of its limits was exceeded."""

    allowed: bool
    counts: tuple[int, ...]
    exceeded: tuple[Limit, ...]  # the limits that refused it (empty when allowed)
    used_up: tuple[Limit, ...]  # the limits whose last attempt of the window this one took
    _bus: Bus = field(repr=False)
    _keys: tuple[str, ...] = field(repr=False)
    _settled: bool = field(default=False, repr=False)

    async def succeeded(self) -> None:
        """The attempt was right: take its increments back (failures before it stay)."""
        if self.allowed and not self._settled:
            self._settled = True
            for key in self._keys:
                await self._bus.decr(key)


async def attempt(bus: Bus, checks: Sequence[tuple[Limit, str]]) -> Attempt:
    """Count one attempt on every (limit, subject) first, then decide.

    Allowed only if every count, this attempt included, is within its limit; a refused attempt
    is not counted. An allowed one stays counted (a failure) unless `succeeded()` is called.
    Counts are taken one at a time, so under any concurrency one attempt per window sees a
    limit's last count (`used_up`; again only after a success took a count back): the place to
    note a lock-out once, not per refusal.
    """
    counters = [
        (limit.key(subject), limit.max_attempts, limit.window_seconds) for limit, subject in checks
    ]
    allowed, counts = await bus.count_attempt(counters)
    pairs = [(limit, count) for (limit, _), count in zip(checks, counts, strict=True)]
    return Attempt(
        allowed=allowed,
        counts=counts,
        exceeded=() if allowed else tuple(lim for lim, n in pairs if n > lim.max_attempts),
        used_up=tuple(lim for lim, n in pairs if n == lim.max_attempts) if allowed else (),
        _bus=bus,
        _keys=tuple(key for key, _, _ in counters),
    )


async def exhausted(bus: Bus, limit: Limit, subject: str) -> bool:
    """True if `subject` has no attempt left in the current window (a read, nothing counted)."""
    value = await bus.get(limit.key(subject))
    return value is not None and int(value) >= limit.max_attempts


async def reset(bus: Bus, limit: Limit, subject: str) -> None:
    """Forget `subject`'s count for `limit` (see the module docstring for when that is safe)."""
    await bus.delete(limit.key(subject))
