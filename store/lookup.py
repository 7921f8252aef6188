"""Looking a work order up safely.

Access needs the tracking number plus the last 4 digits of the phone given at filing, or the
same citizen (any linked channel identity) that filed it. "No such order" and "wrong digits"
are indistinguishable to the caller. 5 failures per requester key (identity, IP) or per tracking
number within 15 minutes block further attempts for 15 minutes.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from store import tracking
from store.bus import Bus
from store.crypto import PersonalDataCipher
from store.models import WorkOrder
from store.work_orders import by_tracking_no

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True)
class LookupOutcome:
    """`order` is set only when access is granted."""

    order: WorkOrder | None
    refused: bool = False  # rate-limited: try again later
    malformed: bool = False  # not a valid tracking number (caught by the check character)
    needs_phone: bool = False  # the number is well-formed; ask for the phone's last 4 digits


async def lookup(
    session: AsyncSession,
    bus: Bus,
    cipher: PersonalDataCipher,
    *,
    raw_tracking_no: str,
    phone_last4: str | None,
    requester_keys: Sequence[str],
    citizen_id: int | None = None,
) -> LookupOutcome:
    """Find an order the requester may see. See the module docstring for the rules."""
    tracking_no = tracking.normalize(raw_tracking_no)
    if tracking_no is None:
        return LookupOutcome(order=None, malformed=True)
    keys = [*requester_keys, f"tn:{tracking_no}"]
    if await _blocked(bus, keys):
        return LookupOutcome(order=None, refused=True)
    order = await by_tracking_no(session, tracking_no)
    if order is not None and citizen_id is not None and order.citizen_id == citizen_id:
        return LookupOutcome(order=order)
    if phone_last4 is None:
        return LookupOutcome(order=None, needs_phone=True)
    if order is not None and _digits_match(cipher, order, phone_last4):
        return LookupOutcome(order=order)
    refused = await _record_failure(bus, keys)
    return LookupOutcome(order=None, refused=refused)


def _digits_match(cipher: PersonalDataCipher, order: WorkOrder, last4: str) -> bool:
    phone = order.phone  # decrypted with the session's cipher (store/sealed.py)
    if phone is None:
        return False
    given = "".join(ch for ch in last4 if ch.isdigit())[-4:]
    return hmac.compare_digest(phone[-4:].encode(), given.encode())


async def _blocked(bus: Bus, keys: Sequence[str]) -> bool:
    for key in keys:
        if await bus.get(f"lookup:block:{key}") is not None:
            return True
    return False


async def _record_failure(bus: Bus, keys: Sequence[str]) -> bool:
    """Count a failure on every key; True if one of them is now blocked."""
    blocked = False
    for key in keys:
        count = await bus.incr(f"lookup:fail:{key}", WINDOW_SECONDS)
        if count >= MAX_FAILURES:
            await bus.set(f"lookup:block:{key}", "1", WINDOW_SECONDS)
            blocked = True
    return blocked
