"""The gateway killed (SIGKILL) with status notices pending: after the restart each notice
reaches the citizen once. Telegram (the local fake Bot API) is down while the first process
tries them, so they are pending when it dies; it is back when the new process starts. And a
gateway killed in the middle of a push (Telegram has not answered yet) makes the push again
after the restart: what was "told" lives in Redis, and is written only after delivery."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from store import lifecycle, work_orders
from store.conversations import ensure_conversation
from store.crypto import PersonalDataCipher
from store.db import Database
from store.models import Message, Outbox
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI
from tests.reliability.conftest import PrivateRedis, gateway_env, migrate, wait_for

pytestmark = pytest.mark.timeout(180)
CHATS = (810001, 810002, 810003)


async def file_and_dispatch(db: Database, cipher: PersonalDataCipher) -> dict[int, str]:
    """One order per Telegram citizen, each moved to 派单: one pending notice each."""
    numbers = {}
    for chat in CHATS:
        async with db.session() as s:
            conv = await ensure_conversation(s, "telegram", str(chat))
            order = await work_orders.create_work_order(
                s,
                cipher,
                conversation=conv,
                kind="report",
                category_code="urban",
                description=f"{chat}号楼下的路灯坏了",
                location="幸福路8号",
                contact_name="王先生",
                phone=f"139{chat:08d}",  # one phone each: the same phone links citizens
                actor="bot",
                idempotency_key=None,
            )
            numbers[chat] = order.tracking_no
        async with db.session() as s:
            order = await work_orders.by_id(s, order.id)
            await lifecycle.transition(s, order, "dispatched", "agent:li")
    return numbers


async def test_notices_pending_when_the_gateway_is_killed_are_each_delivered_once(
    tmp_path, gateways
) -> None:
    telegram = FakeTelegramAPI()
    await telegram.start()
    telegram.down = 10**6  # every sendMessage gets 502 Bad Gateway
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    env = gateway_env(
        database_url,
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_SECRET_TOKEN="reliability_webhook-secret",
        TELEGRAM_API_BASE=telegram.base_url,
    )
    migrate(env)
    db = Database(database_url, cipher=PersonalDataCipher(env["DATA_KEY"]))
    try:
        gateway = gateways(env)
        await gateway.start()
        numbers = await file_and_dispatch(db, PersonalDataCipher(env["DATA_KEY"]))

        async def rows() -> list[Outbox]:
            async with db.session() as s:
                return list((await s.execute(select(Outbox).order_by(Outbox.id))).scalars())

        async def all_tried() -> bool:
            tried = [r for r in await rows() if r.attempts >= 1]
            return len(tried) >= len(CHATS)

        await wait_for(all_tried, 30, "the first gateway trying every notice")
        gateway.kill()
        assert all(r.delivered_at is None for r in await rows())
        before = len(telegram.calls)
        telegram.down = 0  # Telegram is back

        await gateway.start()

        async def all_delivered() -> bool:
            return all(r.delivered_at is not None for r in await rows())

        await wait_for(all_delivered, 60, "every notice delivered after the restart")
        after = [p for m, p in telegram.calls[before:] if m == "sendMessage"]
        for chat in CHATS:
            told = [p["text"] for p in after if str(p["chat_id"]) == str(chat)]
            assert len(told) == 1 and numbers[chat] in told[0], (chat, told)
            async with db.session() as s:
                conv = await ensure_conversation(s, "telegram", str(chat))
                stored = list(
                    (
                        await s.execute(
                            select(Message).where(
                                Message.conversation_id == conv.id, Message.sender == "system"
                            )
                        )
                    ).scalars()
                )
            assert [m.status for m in stored] == ["processed"]  # stored once, delivered
    finally:
        await db.close()
        await telegram.close()


async def test_a_push_cut_off_by_the_kill_is_made_after_the_restart(
    tmp_path, gateways, private_redis: PrivateRedis
) -> None:
    telegram = FakeTelegramAPI()
    await telegram.start()
    telegram.stall = asyncio.Event()  # Telegram takes the first push and does not answer
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    env = gateway_env(
        database_url,
        REDIS_URL=private_redis.url,
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_SECRET_TOKEN="reliability_webhook-secret",
        TELEGRAM_API_BASE=telegram.base_url,
    )
    migrate(env)
    db = Database(database_url, cipher=PersonalDataCipher(env["DATA_KEY"]))
    try:
        gateway = gateways(env)
        await gateway.start()
        numbers = await file_and_dispatch(db, PersonalDataCipher(env["DATA_KEY"]))

        async def pushing() -> bool:
            return len(telegram.called("sendMessage")) >= 1

        await wait_for(pushing, 30, "the first push reaching Telegram")
        gateway.kill()  # while Telegram has not answered
        before = len(telegram.calls)
        telegram.stall.set()
        telegram.stall = None

        await gateway.start()

        async def all_delivered() -> bool:
            async with db.session() as s:
                rows = list((await s.execute(select(Outbox))).scalars())
            return len(rows) == len(CHATS) and all(r.delivered_at is not None for r in rows)

        await wait_for(all_delivered, 60, "every notice delivered after the restart")
        after = [p for m, p in telegram.calls[before:] if m == "sendMessage"]
        for chat in CHATS:
            told = [p["text"] for p in after if str(p["chat_id"]) == str(chat)]
            assert len(told) == 1 and numbers[chat] in told[0], (chat, told)
    finally:
        await db.close()
        await telegram.close()
