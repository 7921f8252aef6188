"""The gateway outlives its backends: Redis or PostgreSQL restarted under a running gateway
process. Requests during the outage fail cleanly (503, quickly), and the same process serves
again once the backend is back, without being restarted; nothing the citizen sent is lost."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from store.crypto import PersonalDataCipher
from store.db import Database
from store.models import Message
from tests.fakes.rasa import FakeRasa
from tests.reliability.conftest import (
    PrivatePostgres,
    PrivateRedis,
    gateway_env,
    migrate,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)
OUTAGE_ANSWER_SECONDS = 10.0  # a request during an outage is answered within this


async def say(gateway_url: str, sender: str, text: str, message_id: str) -> tuple[int, Any]:
    """One turn through the REST channel: (status, JSON body)."""
    body = {"sender": sender, "message": text, "message_id": message_id}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(gateway_url + "/webhooks/rest/webhook", json=body) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_redis_restarted_under_a_running_gateway(
    tmp_path, gateways, private_redis: PrivateRedis, fake_rasa: FakeRasa
) -> None:
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    env = gateway_env(database_url, REDIS_URL=private_redis.url, RASA_URL=fake_rasa.url)
    migrate(env)
    gateway = gateways(env)
    await gateway.start()
    pid = gateway.proc.pid
    assert (await say(gateway.url, "r-1", "在吗", "1"))[0] == 200

    private_redis.stop()
    started = time.monotonic()
    status, body = await say(gateway.url, "r-1", "路灯坏了好几天", "2")
    assert status == 503 and body == {"error": "服务暂时不可用，请稍后再试。"}
    assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS

    await private_redis.start()  # empty: every key is gone

    async def serves() -> bool:
        status, body = await say(gateway.url, "r-1", "现在好了吗", "3")
        return status == 200 and body[0]["text"] == "收到：现在好了吗"

    await wait_for(serves, 30, "the gateway serving again after Redis came back")
    assert gateway.alive() and gateway.proc.pid == pid  # the same process, never restarted

    # The message sent during the outage was stored, and is answered now (the sweeper).
    db = Database(database_url, cipher=PersonalDataCipher(env["DATA_KEY"]))
    try:

        async def answered() -> bool:
            async with db.session() as s:
                messages = (await s.execute(select(Message))).scalars()
                rows = {(m.sender, m.text, m.status) for m in messages}  # text is sealed
            # (The REST channel has no push path: the answer is kept in the conversation.)
            return ("citizen", "路灯坏了好几天", "processed") in rows and any(
                who == "bot" and text == "收到：路灯坏了好几天" for who, text, _ in rows
            )

        await wait_for(answered, 30, "the message sent during the outage answered")
    finally:
        await db.close()


async def test_postgresql_restarted_under_a_running_gateway(
    gateways, private_postgres: PrivatePostgres, fake_rasa: FakeRasa
) -> None:
    env = gateway_env(private_postgres.url, RASA_URL=fake_rasa.url)
    migrate(env)
    gateway = gateways(env)
    await gateway.start()
    pid = gateway.proc.pid
    assert (await say(gateway.url, "p-1", "在吗", "1"))[0] == 200

    private_postgres.stop()
    started = time.monotonic()
    status, body = await say(gateway.url, "p-1", "井盖丢了很危险", "2")
    assert status == 503 and body == {"error": "服务暂时不可用，请稍后再试。"}
    assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS

    private_postgres.start()

    async def serves() -> bool:
        status, body = await say(gateway.url, "p-1", "现在好了吗", "3")
        return status == 200 and bool(body) and body[0]["text"] == "收到：现在好了吗"

    await wait_for(serves, 30, "the gateway serving again after PostgreSQL came back")
    assert gateway.alive() and gateway.proc.pid == pid

    # The client sends the refused message again: stored and answered once.
    status, body = await say(gateway.url, "p-1", "井盖丢了很危险", "2")
    assert status == 200 and [r["text"] for r in body] == ["收到：井盖丢了很危险"]
    db = Database(private_postgres.url, cipher=PersonalDataCipher(env["DATA_KEY"]))
    try:
        async with db.session() as s:
            messages = (await s.execute(select(Message).order_by(Message.id))).scalars()
            texts = [m.text for m in messages]
    finally:
        await db.close()
    assert texts.count("井盖丢了很危险") == 1
