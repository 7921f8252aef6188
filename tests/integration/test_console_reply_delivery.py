"""An agent's live reply that the citizen's platform does not take is not retried behind the
agent's back: the console is told it was not delivered, the message stays in the history once,
marked failed with the reason, whether the failure was transient (Telegram 502) or not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import create_app
from bot.channels.telegram import TELEGRAM
from bot.settings import Settings
from store.db import Database
from store.models import Message
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI, text_update
from tests.integration.test_console_helpers import (
    Console,
    claim_by_hand,
    make_agent,
    next_event,
    unique,
    wait_until,
)

SECRET = "reply_webhook-secret"
CHAT = 626262


@pytest.fixture
async def gateway_tg(
    settings: Settings, db: Database, tg_api: FakeTelegramAPI
) -> AsyncIterator[TestClient]:
    update = {
        "telegram_token": SecretStr(TOKEN),
        "telegram_secret_token": SecretStr(SECRET),
        "telegram_api_base": tg_api.base_url,
    }
    app = create_app(claim_by_hand(settings).model_copy(update=update))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


def texts(tg_api: FakeTelegramAPI) -> list[str]:
    return [p["text"] for p in tg_api.called("sendMessage")]


async def test_a_reply_telegram_did_not_take_is_reported_failed_and_not_retried(
    gateway_tg: TestClient,
    db: Database,
    settings: Settings,
    tg_api: FakeTelegramAPI,
    fake_rasa: FakeRasa,
) -> None:
    username = unique()
    await make_agent(settings.database_url, username)
    console = Console(gateway_tg)
    try:
        assert (await console.login(username)).status == 200
        ws = await console.ws()
        # The bot is down: the citizen's 转人工 opens a hand-off; they are told their place.
        fake_rasa.status = 500
        body = text_update(1, CHAT, "转人工")
        resp = await gateway_tg.post(
            "/webhooks/telegram", json=body, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
        assert resp.status == 200
        await gateway_tg.app[TELEGRAM].drain()
        opened = await next_event(ws, lambda e: e["type"] == "handoff" and e["change"] == "opened")
        await wait_until(lambda: any("第1位" in t for t in texts(tg_api)))
        hid = opened["handoff"]["id"]
        assert (await console.post(f"/console/api/handoffs/{hid}/claim")).status == 200

        tg_api.down = 1  # Telegram answers the next sendMessage with 502 Bad Gateway
        before = len(texts(tg_api))
        sent = await console.post(f"/console/api/handoffs/{hid}/reply", {"text": "您好，请讲"})
        assert sent.status == 200
        assert (await sent.json())["delivered"] is False
        assert texts(tg_api)[before:] == ["您好，请讲"]  # tried once, not again

        async with db.session() as s:
            stored = (
                (await s.execute(select(Message).where(Message.sender == "agent"))).scalars().all()
            )
        [reply] = stored
        assert reply.text == "您好，请讲" and reply.status == "failed"
        assert "Bad Gateway" in reply.payload["undelivered"]

        # Sending again is the agent's choice, and it goes through now.
        again = await console.post(f"/console/api/handoffs/{hid}/reply", {"text": "您好，请讲"})
        assert (await again.json())["delivered"] is True
        assert texts(tg_api)[before:] == ["您好，请讲", "您好，请讲"]
        await ws.close()
    finally:
        await console.close()
