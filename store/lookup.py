"""Looking a work order up safely.

Access needs the tracking number plus the last 4 digits of the phone given at filing, or the
same citizen (any linked channel identity, e.g. after 绑定 or an SMS-verified phone) that filed
it. "No such order" and "wrong digits" are indistinguishable to the caller.

Guessing the digits is limited with store/limits.py, counted *before* the comparison so that
parallel guesses cannot slip through:

- per requester key (chat sender, client address): 5 wrong guesses per 15 minutes, then that
  requester is refused until the window ends;
- per tracking number: 20 wrong guesses per 24 hours from all requesters together, then the
  digits path of that number is closed until the window ends. This keeps a guesser with many
  throw-away identities from enumerating 10,000 combinations, and it is not an owner lock-out:
  the citizen who filed the order (same conversation, a linked channel or a verified phone)
  is let in before any limit, and a requester with the right digits gets in while the number
  has fewer than 20 failures (a few guessers only block themselves).

A right guess takes its own count back; earlier wrong guesses stay counted. A refusal says
which limit refused (`number_closed`), so the citizen is told a wait that is true; both limits
count unknown numbers as well, so this reveals nothing about whether a number exists.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from store import limits, tracking
from store.bus import Bus
from store.crypto import PersonalDataCipher
from store.models import WorkOrder
from store.work_orders import by_tracking_no

REQUESTER_LIMIT = limits.Limit("lookup:requester", max_attempts=5, window_seconds=15 * 60)
NUMBER_LIMIT = limits.Limit("lookup:number", max_attempts=20, window_seconds=24 * 3600)


@dataclass(frozen=True)
class LookupOutcome:
    """`order` is set only when access is granted."""

    order: WorkOrder | None
    refused: bool = False  # rate-limited: try again later
    number_closed: bool = False  # refused by NUMBER_LIMIT (up to 24 h), not the requester's 15 min
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
    order: WorkOrder | None = None
    if citizen_id is not None:
        # The owner's own conversation is never limited: no guess is involved.
        order = await by_tracking_no(session, tracking_no)
        if order is not None and order.citizen_id == citizen_id:
            return LookupOutcome(order=order)
    if phone_last4 is None:
        return LookupOutcome(order=None, needs_phone=True)
    checks = [(REQUESTER_LIMIT, key) for key in requester_keys]
    checks.append((NUMBER_LIMIT, tracking_no))
    attempt = await limits.attempt(bus, checks)
    if not attempt.allowed:
        # Counted per number whether or not it exists, so saying which limit refused tells
        # nothing about the number; it only keeps "try again in 15 minutes" true.
        closed = NUMBER_LIMIT in attempt.exceeded
        return LookupOutcome(order=None, refused=True, number_closed=closed)
    if citizen_id is None:  # else loaded above
        order = await by_tracking_no(session, tracking_no)
    if order is not None and _digits_match(cipher, order, phone_last4):
        await attempt.succeeded()
        return LookupOutcome(order=order)
    return LookupOutcome(order=None)


def _digits_match(cipher: PersonalDataCipher, order: WorkOrder, last4: str) -> bool:
    phone = order.phone  # decrypted with the session's cipher (store/sealed.py)
    if phone is None:
        return False
    given = "".join(ch for ch in last4 if ch.isdigit())[-4:]
    return hmac.compare_digest(phone[-4:].encode(), given.encode())
