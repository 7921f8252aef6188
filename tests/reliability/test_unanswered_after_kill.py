"""A message stored when the gateway is SIGKILLed, its turn still at Rasa: the restarted
gateway's sweeper answers it within the bound, once, through Telegram's push path.

Telegram and Rasa are the local fakes; Rasa holds the turn until the gateway has died."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sqlalchemy import select

from bot.channels.telegram import SECRET_HEADER
from store.crypto import PersonalDataCipher
from store.db import Database
from store.models import Message
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI, text_update
from tests.reliability.conftest import gateway_env, migrate, wait_for

pytestmark = pytest.mark.timeout(180)
SECRET = "reliability_webhook-secret"
CHAT = 830001


async def test_a_message_stored_when_the_gateway_dies_is_answered_once_after_the_restart(
    tmp_path, gateways, fake_rasa: FakeRasa
) -> None:
    telegram = FakeTelegramAPI()
    await telegram.start()
    fake_rasa.stall = asyncio.Event()
    database_url = f"sqlite:///{tmp_path / 'hotline.db'}"
    env = gateway_env(
        database_url,
        RASA_URL=fake_rasa.url,
        RASA_TIMEOUT="30",  # the first gateway is still waiting for Rasa when it dies
        ANSWER_WITHIN_SECONDS="2",
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_SECRET_TOKEN=SECRET,
        TELEGRAM_API_BASE=telegram.base_url,
    )
    migrate(env)
    db = Database(database_url, cipher=PersonalDataCipher(env["DATA_KEY"]))
    try:
        gateway = gateways(env)
        await gateway.start()
        async with aiohttp.ClientSession() as http:
            async with http.post(
                gateway.url + "/webhooks/telegram",
                json=text_update(1, CHAT, "小区门口的井盖丢了"),
                headers={SECRET_HEADER: SECRET},
            ) as resp:
                assert resp.status == 200  # stored, then acknowledged

        async def at_rasa() -> bool:
            return len(fake_rasa.received) == 1

        await wait_for(at_rasa, 30, "the turn reaching Rasa")
        gateway.kill()
        fake_rasa.stall.set()
        fake_rasa.stall = None

        await gateway.start()

        def told() -> list[str]:
            return [p["text"] for p in telegram.called("sendMessage")]

        async def answered() -> bool:
            return bool(told())

        await wait_for(answered, 30, "the restarted gateway answering the stored message")
        async with db.session() as s:
            rows = list((await s.execute(select(Message).order_by(Message.id))).scalars())
        assert [(m.sender, m.text, m.status) for m in rows] == [
            ("citizen", "小区门口的井盖丢了", "processed"),
            ("bot", "收到：小区门口的井盖丢了", "processed"),
        ]
        assert told() == ["收到：小区门口的井盖丢了"]
        assert rows[0].tries == 2
    finally:
        await db.close()
        await telegram.close()
