"""SMS one-time codes in the store (SQLite and PostgreSQL; the bus in memory and on real Redis):
hashed at rest, 5 minutes, 5 tries counted before the comparison even under parallel guesses,
a resend cooldown and daily caps taken atomically, and merges only between verified phones."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from store import limits, links
from store import phone_verification as pv
from store.bus import Bus, MemoryBus, RedisBus
from store.conversations import ensure_conversation
from store.crypto import PersonalDataCipher
from store.db import Database
from store.models import AuditLog, ChannelIdentity, Citizen, PhoneVerification, WorkOrder, utcnow
from tests.conftest import REDIS_URL, new_data_key

PHONE = "13812345678"
HERE = "ip:198.51.100.7"  # the client subject asking (store/limits.py subject)


@pytest.fixture
def cipher() -> PersonalDataCipher:
    return PersonalDataCipher(new_data_key())


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "redis":
        real = RedisBus(REDIS_URL, prefix=f"test-pv-{uuid.uuid4().hex[:8]}:")
        yield real
        await real.close()
    else:
        yield MemoryBus()


async def identity(db: Database, channel: str, who: str) -> int:
    async with db.session() as s:
        return (await ensure_conversation(s, channel, who)).channel_identity_id


async def issue(db: Database, cipher: PersonalDataCipher, identity_id: int, now=None, phone=PHONE):
    async with db.session() as s:
        return await pv.issue(s, cipher, identity_id, phone, now)


async def check(db: Database, cipher: PersonalDataCipher, identity_id: int, code: str, now=None):
    async with db.session() as s:
        return await pv.check(s, cipher, identity_id, code, now)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def citizen_of(db: Database, identity_id: int) -> Citizen:
    async with db.session() as s:
        return await s.get_one(Citizen, (await s.get_one(ChannelIdentity, identity_id)).citizen_id)


async def test_code_is_six_digits_and_stored_only_as_a_keyed_hash(db, cipher) -> None:
    me = await identity(db, "wechat", "o-hash")
    issued = await issue(db, cipher, me)
    assert len(issued.code) == 6 and issued.code.isdigit()
    async with db.session() as s:
        row = await s.get_one(PhoneVerification, issued.verification_id)
    stored = [str(v) for v in (row.code_hash, row.phone_hash)] + [row.phone_enc.hex()]
    assert all(issued.code not in v and PHONE not in v for v in stored)
    assert row.code_hash != pv.code_hash(
        PersonalDataCipher(new_data_key()), me, row.phone_hash, issued.code
    )
    assert row.expires_at - row.created_at == timedelta(minutes=5)
    checked = await check(db, cipher, me, issued.code)
    assert checked.outcome == pv.VERIFIED and checked.phone_masked == "138****5678"
    citizen = await citizen_of(db, me)
    assert citizen.phone_verified_at is not None and citizen.phone_hash == cipher.keyed_hash(PHONE)
    assert (await check(db, cipher, me, issued.code)).outcome != pv.VERIFIED  # single use


async def test_code_expires_after_five_minutes(db, cipher) -> None:
    me = await identity(db, "web", "s-expiry")
    start = utcnow()
    issued = await issue(db, cipher, me, now=start)
    late = start + timedelta(minutes=5, seconds=1)
    assert (await check(db, cipher, me, issued.code, now=late)).outcome == pv.EXPIRED
    issued = await issue(db, cipher, me, now=start)
    in_time = start + timedelta(minutes=4, seconds=59)
    assert (await check(db, cipher, me, issued.code, now=in_time)).outcome == pv.VERIFIED


async def test_five_tries_then_even_the_right_code_is_refused(db, cipher) -> None:
    me = await identity(db, "telegram", "t-tries")
    issued = await issue(db, cipher, me)
    answers = [await check(db, cipher, me, wrong(issued.code)) for _ in range(5)]
    assert [(a.outcome, a.tries_left) for a in answers] == [
        (pv.WRONG, 4),
        (pv.WRONG, 3),
        (pv.WRONG, 2),
        (pv.WRONG, 1),
        (pv.TOO_MANY, 0),
    ]
    assert (await check(db, cipher, me, issued.code)).outcome == pv.TOO_MANY
    assert (await citizen_of(db, me)).phone_verified_at is None


async def test_parallel_guesses_get_five_comparisons_at_most(db, cipher) -> None:
    me = await identity(db, "web", "s-parallel")
    issued = await issue(db, cipher, me)
    guesses = [f"{n:06d}" for n in range(31) if f"{n:06d}" != issued.code][:30]
    answers = await asyncio.gather(*(check(db, cipher, me, g) for g in guesses))
    outcomes = [a.outcome for a in answers]
    assert outcomes.count(pv.WRONG) == pv.MAX_TRIES - 1  # the fifth wrong one says TOO_MANY
    assert outcomes.count(pv.TOO_MANY) == len(guesses) - (pv.MAX_TRIES - 1)
    async with db.session() as s:
        row = await s.get_one(PhoneVerification, issued.verification_id)
    assert row.attempts == pv.MAX_TRIES  # counted before comparing: 30 guesses, 5 comparisons
    assert (await check(db, cipher, me, issued.code)).outcome == pv.TOO_MANY
    assert (await citizen_of(db, me)).phone_verified_at is None


async def test_a_new_code_ends_the_previous_one(db, cipher) -> None:
    me = await identity(db, "web", "s-new")
    old = await issue(db, cipher, me)
    new = await issue(db, cipher, me)
    if old.code != new.code:
        assert (await check(db, cipher, me, old.code)).outcome == pv.WRONG
    assert (await check(db, cipher, me, new.code)).outcome == pv.VERIFIED


async def test_only_citizens_who_verified_the_same_phone_are_merged(db, cipher) -> None:
    first = await identity(db, "wechat", "o-first")
    typed_only = await identity(db, "web", "s-typed")  # has the phone, never proved it
    other_phone = await identity(db, "telegram", "t-other")
    second = await identity(db, "telegram", "t-second")
    async with db.session() as s:
        legacy = await s.get_one(Citizen, (await s.get_one(ChannelIdentity, typed_only)).citizen_id)
        legacy.phone_hash = cipher.keyed_hash(PHONE)  # what filing used to leave behind
        mine = (await s.get_one(ChannelIdentity, first)).citizen_id
        s.add(
            WorkOrder(
                tracking_no="PV-1", citizen_id=mine, channel_identity_id=first, description="旧"
            )
        )
    for who, phone in ((first, PHONE), (other_phone, "13900001111")):
        issued = await issue(db, cipher, who, phone=phone)
        checked = await check(db, cipher, who, issued.code)
        assert checked.outcome == pv.VERIFIED and checked.merged == 0
    issued = await issue(db, cipher, second)
    checked = await check(db, cipher, second, issued.code)
    assert checked.outcome == pv.VERIFIED and checked.merged == 1
    survivor = (await citizen_of(db, first)).id
    assert checked.citizen_id == survivor == (await citizen_of(db, second)).id
    assert (await citizen_of(db, typed_only)).id != survivor
    assert (await citizen_of(db, other_phone)).id != survivor
    async with db.session() as s:
        assert await links.linked_channels(s, survivor) == ["telegram", "wechat"]
        owner = await s.scalar(select(WorkOrder.citizen_id).where(WorkOrder.tracking_no == "PV-1"))
        actions = [a.action for a in (await s.execute(select(AuditLog))).scalars()]
    assert owner == survivor
    assert actions.count("verify_phone") == 3 and actions.count("merge:phone") == 1


async def test_cooldown_and_daily_caps_are_taken_atomically(bus, cipher) -> None:
    phone_hash, other_hash = cipher.keyed_hash(PHONE), cipher.keyed_hash("13900002222")
    results = await asyncio.gather(
        *(pv.reserve(bus, 1, phone_hash, HERE) for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(r, limits.Attempt) for r in results) == 1
    assert all(isinstance(r, pv.Cooldown) for r in results if not isinstance(r, limits.Attempt))
    with pytest.raises(pv.Cooldown):
        await pv.reserve(bus, 2, phone_hash, HERE)  # the same phone from another identity
    with pytest.raises(pv.Cooldown):
        await pv.reserve(bus, 1, other_hash, HERE)  # another phone from the same identity
    await pv.reserve(bus, 3, other_hash, HERE)  # a refusal took nothing from the others
    # Past the cooldown (what `release` does after 60 s), the phone's daily cap still holds.
    for n in range(pv.MAX_CODES_PER_PHONE_PER_DAY - 1):
        await pv.release(bus, 10 + n, phone_hash)
        await pv.reserve(bus, 20 + n, phone_hash, HERE)
    await pv.release(bus, 99, phone_hash)
    with pytest.raises(pv.DailyLimit):
        await pv.reserve(bus, 100, phone_hash, HERE)
