"""Proving a phone number with an SMS one-time code, and linking citizens who proved the same one.

Rules (issue 9; the chat that uses them is bot/phone_verification.py):

* A code is 6 digits from `secrets`, valid CODE_TTL_SECONDS (5 minutes), and stored only as a
  keyed HMAC (the DATA_KEY-derived key of store/crypto.py, bound to the identity and the phone),
  never in clear. A new code for the same identity ends the previous one.
* MAX_TRIES (5) tries per code. Each try is counted by one atomic UPDATE before the code is
  compared, so parallel guesses cannot get more than five comparisons.
* One code per identity and per phone every RESEND_COOLDOWN_SECONDS (60), and within 24 hours
  at most MAX_CODES_PER_PHONE_PER_DAY to one phone, MAX_CODES_PER_IDENTITY_PER_DAY to one
  identity; per client address 10 an hour and 30 a day. All are taken from the bus atomically
  (SET NX, then one store/limits.py attempt) before anything is sent; there is no global cap.
* The right code records the phone on the identity's citizen (`phone_verified_at`) and merges
  every other citizen who verified the same phone: the only merge a phone number can cause.

Outcomes of a try are returned, not raised, so the counted try is committed with the session.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import audit, limits, links
from store.bus import Bus
from store.crypto import PersonalDataCipher, associated_data, mask_phone, normalize_mobile
from store.models import ChannelIdentity, Citizen, PhoneVerification, utcnow

CODE_TTL_SECONDS = 5 * 60
MAX_TRIES = 5
RESEND_COOLDOWN_SECONDS = 60
MAX_CODES_PER_PHONE_PER_DAY = 5
MAX_CODES_PER_IDENTITY_PER_DAY = 10
DAY_SECONDS = 24 * 60 * 60
HOUR_SECONDS = 60 * 60
# What one send costs, on every cap at once (store/limits.py; fixed windows from the first send).
SENDS_PER_PHONE = limits.Limit("sms:phone", MAX_CODES_PER_PHONE_PER_DAY, DAY_SECONDS)
SENDS_PER_IDENTITY = limits.Limit("sms:identity", MAX_CODES_PER_IDENTITY_PER_DAY, DAY_SECONDS)
# Per client address: throw-away identities asking for throw-away numbers still come from
# somewhere. Loose enough for a shared (NAT) address; no cap for everyone, which an attacker
# could use up to switch verification off.
SENDS_PER_ADDRESS_HOUR = limits.Limit("sms:address:hour", 10, HOUR_SECONDS)
SENDS_PER_ADDRESS_DAY = limits.Limit("sms:address:day", 30, DAY_SECONDS)
ADDRESS_LIMITS = (SENDS_PER_ADDRESS_HOUR, SENDS_PER_ADDRESS_DAY)

VERIFIED, WRONG, TOO_MANY, EXPIRED, NO_CODE = "verified", "wrong", "too_many", "expired", "none"


class VerificationRefused(Exception):
    """No code is sent; the subclass says why (plain values only, safe after a rollback)."""


class InvalidPhone(VerificationRefused):
    """Not a mainland mobile number."""


class Cooldown(VerificationRefused):
    """A code went to this identity or phone less than RESEND_COOLDOWN_SECONDS ago."""


class DailyLimit(VerificationRefused):
    """This phone or identity had its codes for the last 24 hours."""


class AddressLimit(VerificationRefused):
    """Too many codes were asked for from this client address; it may ask again within
    `window_seconds` (the window of the cap that refused)."""

    def __init__(self, window_seconds: float) -> None:
        super().__init__(window_seconds)
        self.window_seconds = window_seconds


@dataclass(frozen=True)
class Issued:
    """A code to send. `phone` and `code` are in clear only for the SMS and never stored."""

    verification_id: int
    phone: str
    phone_hash: str
    code: str
    expires_at: datetime

    @property
    def phone_masked(self) -> str:
        """138****5678."""
        return mask_phone(self.phone)


@dataclass(frozen=True)
class Checked:
    """The outcome of one try: VERIFIED, WRONG (tries_left), TOO_MANY, EXPIRED or NO_CODE."""

    outcome: str
    tries_left: int = 0
    citizen_id: int | None = None  # after VERIFIED: the citizen now holding the phone
    merged: int = 0  # after VERIFIED: how many other citizens were merged into it
    phone_masked: str = ""


def code_hash(cipher: PersonalDataCipher, identity_id: int, phone_hash: str, code: str) -> str:
    """The keyed hash a code is stored as (bound to the identity and the phone)."""
    return cipher.keyed_hash(f"sms-code|{identity_id}|{phone_hash}|{code}")


async def reserve(
    bus: Bus, identity_id: int, phone_hash: str, client_subject: str
) -> limits.Attempt:
    """Take one send from the cooldowns and the caps, or raise Cooldown / DailyLimit /
    AddressLimit. The returned attempt stays counted; `release` gives it back.

    `client_subject` is who asks, as per-address limits know it (an address for the web widget,
    the platform's own user id where the platform hides the address). The cooldowns are taken
    first (SET NX), so parallel asks of one identity hear "cooldown", not "cap"; then every cap
    is counted in one atomic step (store/limits.py); a refused send is counted nowhere.
    """
    taken: list[str] = []
    for key in (f"sms:cooldown:identity:{identity_id}", f"sms:cooldown:phone:{phone_hash}"):
        if not await bus.set_nx(key, "1", RESEND_COOLDOWN_SECONDS):
            await _give_back(bus, taken)  # the other key was ours
            raise Cooldown()
        taken.append(key)
    sends = await limits.attempt(
        bus,
        [
            (SENDS_PER_ADDRESS_HOUR, client_subject),
            (SENDS_PER_ADDRESS_DAY, client_subject),
            (SENDS_PER_PHONE, phone_hash),
            (SENDS_PER_IDENTITY, str(identity_id)),
        ],
    )
    if not sends.allowed:
        await _give_back(bus, taken)
        by_address = [lim for lim in sends.exceeded if lim in ADDRESS_LIMITS]
        if by_address:
            raise AddressLimit(max(lim.window_seconds for lim in by_address))
        raise DailyLimit()
    return sends


async def _give_back(bus: Bus, keys: list[str]) -> None:
    for key in keys:
        await bus.delete(key)


async def release(
    bus: Bus, identity_id: int, phone_hash: str, sends: limits.Attempt | None = None
) -> None:
    """After a send that did not go out: lift the cooldowns (the citizen may ask again now) and
    give the send back to the caps."""
    await bus.delete(f"sms:cooldown:identity:{identity_id}")
    await bus.delete(f"sms:cooldown:phone:{phone_hash}")
    if sends is not None:
        await sends.succeeded()  # a refund: this send cost nothing


async def issue(
    session: AsyncSession,
    cipher: PersonalDataCipher,
    identity_id: int,
    mobile: str,
    now: datetime | None = None,
) -> Issued:
    """A new code for `mobile` (normalized already) asked for by `identity_id`; ends earlier
    codes of the identity. Call `reserve` first; send the SMS after the commit."""
    now = now or utcnow()
    await session.execute(
        update(PhoneVerification)
        .where(
            PhoneVerification.channel_identity_id == identity_id,
            PhoneVerification.verified_at.is_(None),
            PhoneVerification.expires_at > now,
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    phone_hash = cipher.keyed_hash(mobile)
    code = f"{secrets.randbelow(1_000_000):06d}"
    row = PhoneVerification(
        channel_identity_id=identity_id,
        phone_enc=cipher.encrypt(mobile, _phone_aad(identity_id, phone_hash)),
        phone_hash=phone_hash,
        code_hash=code_hash(cipher, identity_id, phone_hash, code),
        attempts=0,
        expires_at=now + timedelta(seconds=CODE_TTL_SECONDS),
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return Issued(row.id, mobile, phone_hash, code, row.expires_at)


def parse_phone(raw: str) -> str:
    """The normalized mobile number, or InvalidPhone."""
    mobile = normalize_mobile(raw)
    if mobile is None:
        raise InvalidPhone()
    return mobile


async def withdraw(session: AsyncSession, verification_id: int) -> None:
    """End a code whose SMS did not go out."""
    await session.execute(
        update(PhoneVerification)
        .where(PhoneVerification.id == verification_id)
        .values(expires_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def check(
    session: AsyncSession,
    cipher: PersonalDataCipher,
    identity_id: int,
    code: str,
    now: datetime | None = None,
) -> Checked:
    """Try `code` against the identity's live code; on success record the phone and merge."""
    now = now or utcnow()
    latest = (
        select(func.max(PhoneVerification.id))
        .where(
            PhoneVerification.channel_identity_id == identity_id,
            PhoneVerification.verified_at.is_(None),
        )
        .scalar_subquery()
    )
    counted = (
        await session.execute(
            update(PhoneVerification)
            .where(
                PhoneVerification.id == latest,
                PhoneVerification.attempts < MAX_TRIES,
                PhoneVerification.expires_at > now,
            )
            .values(attempts=PhoneVerification.attempts + 1)
            .returning(
                PhoneVerification.id,
                PhoneVerification.attempts,
                PhoneVerification.code_hash,
                PhoneVerification.phone_hash,
                PhoneVerification.phone_enc,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if counted is None:
        return Checked(await _why_not(session, latest, now))
    row_id, attempts, stored, phone_hash, phone_enc = counted
    given = code_hash(cipher, identity_id, phone_hash, code)
    if not hmac.compare_digest(given.encode(), stored.encode()):
        left = MAX_TRIES - attempts
        return Checked(WRONG if left > 0 else TOO_MANY, tries_left=left)
    used = await session.execute(
        update(PhoneVerification)
        .where(PhoneVerification.id == row_id, PhoneVerification.verified_at.is_(None))
        .values(verified_at=now)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE gives a CursorResult
        return Checked(EXPIRED)  # a parallel try used it a moment ago
    phone = cipher.decrypt(phone_enc, _phone_aad(identity_id, phone_hash))
    survivor, merged = await _record_phone(session, identity_id, phone, phone_hash, now)
    return Checked(VERIFIED, citizen_id=survivor, merged=merged, phone_masked=mask_phone(phone))


async def _why_not(session: AsyncSession, latest, now: datetime) -> str:
    row = (
        await session.execute(
            select(PhoneVerification.attempts, PhoneVerification.expires_at).where(
                PhoneVerification.id == latest
            )
        )
    ).first()
    if row is None:
        return NO_CODE
    if row.attempts >= MAX_TRIES and row.expires_at > now:
        return TOO_MANY
    return EXPIRED


def _phone_aad(identity_id: int, phone_hash: str) -> bytes:
    """A code's phone is bound to the identity that asked and the phone's hash: the row id
    does not exist before the insert."""
    return associated_data("phone_verification", "phone_enc", f"{identity_id}:{phone_hash}")


async def _record_phone(
    session: AsyncSession, identity_id: int, phone: str, phone_hash: str, now: datetime
) -> tuple[int, int]:
    identity = await session.get_one(ChannelIdentity, identity_id)
    citizen = await session.get_one(Citizen, identity.citizen_id, with_for_update=True)
    # Through the clear attribute: sealed again under the citizen's own row (store/sealed.py).
    citizen.phone, citizen.phone_hash, citizen.phone_verified_at = phone, phone_hash, now
    audit.record(session, "verify_phone", f"identity:{identity_id} citizen:{citizen.id}")
    await session.flush()
    others = select(Citizen.id).where(
        Citizen.phone_hash == phone_hash,
        Citizen.phone_verified_at.is_not(None),
        Citizen.id != citizen.id,
    )
    survivor, merged = citizen.id, 0
    for other in sorted((await session.execute(others)).scalars()):
        survivor = await links.merge_citizens(session, survivor, other, via="phone")
        merged += 1
    return survivor, merged
