"""Every stored citizen message is answered exactly once (bot/router.py, bot/sweeper.py).

A process that stored a message and then died (or failed) leaves it `received`: the sweeper
answers it through the channel's push path within the bound, once even with two gateways;
a platform's retry of it is answered, not dropped as a duplicate; a turn Rasa completed before
the gateway died is not asked twice; after too many tries the citizen is told sorry and handed
off. A turn that timed out still tells the citizen what it did when it completes late.

"Stored, then the process died" is arranged with the router's own first half (`receive`,
which stores and claims the message) and no second half.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import create_app
from bot.channels.telegram import TELEGRAM
from bot.keys import RASA, ROUTER
from bot.messages import InboundMessage
from bot.router import APOLOGY
from bot.settings import Settings
from bot.sweeper import SWEEPER
from store.db import Database
from store.models import Handoff, Message
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI, text_update
from tests.integration.test_console_helpers import wait_until

SECRET = "unanswered_webhook-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
CHAT = 737373
BOUND = 0.3  # answer_within_seconds of these gateways

Factory = Callable[..., Any]


@pytest.fixture
async def gateway_with(
    settings: Settings, db: Database, tg_api: FakeTelegramAPI
) -> AsyncIterator[Factory]:
    """Start gateways on the same database with Telegram on the fake, settings overridden."""
    clients: list[TestClient] = []

    async def start(**overrides: Any) -> TestClient:
        update = {
            "telegram_token": SecretStr(TOKEN),
            "telegram_secret_token": SecretStr(SECRET),
            "telegram_api_base": tg_api.base_url,
            "answer_within_seconds": BOUND,
            **overrides,
        }
        client = TestClient(TestServer(create_app(settings.model_copy(update=update))))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def sent(tg_api: FakeTelegramAPI) -> list[str]:
    return [p["text"] for p in tg_api.called("sendMessage")]


async def stored_then_died(gateway: TestClient, update_id: int, text: str) -> int:
    """Leave behind what a gateway that died right after storing the message leaves: the
    message stored and claimed, never answered. Returns its id."""
    inbound = InboundMessage("telegram", str(CHAT), text, str(update_id))
    turn = await gateway.app[ROUTER].receive(inbound)
    assert turn is not None
    return turn.message_id


async def statuses(db: Database) -> list[tuple[str, str, str]]:
    async with db.session() as s:
        rows = (await s.execute(select(Message).order_by(Message.id))).scalars()
        return [(m.sender, m.text, m.status) for m in rows]


async def test_a_message_left_unanswered_is_answered_once_by_the_sweeper(
    gateway_with: Factory, tg_api: FakeTelegramAPI, fake_rasa: FakeRasa, db: Database
) -> None:
    gateway = await gateway_with()
    await stored_then_died(gateway, 1, "小区路灯坏了三天")
    await asyncio.sleep(BOUND)

    await gateway.app[SWEEPER].sweep()
    await wait_until(lambda: sent(tg_api) == ["收到：小区路灯坏了三天"])
    for _ in range(2):
        await gateway.app[SWEEPER].sweep()
    assert sent(tg_api) == ["收到：小区路灯坏了三天"]
    assert [r["message"] for r in fake_rasa.received] == ["小区路灯坏了三天"]
    assert await statuses(db) == [
        ("citizen", "小区路灯坏了三天", "processed"),
        ("bot", "收到：小区路灯坏了三天", "processed"),
    ]


async def test_two_gateways_sweeping_at_once_answer_each_message_once(
    gateway_with: Factory, tg_api: FakeTelegramAPI, fake_rasa: FakeRasa
) -> None:
    first, second = await gateway_with(), await gateway_with()
    texts = [f"第{n}条没有回复的留言" for n in range(1, 6)]
    for n, text in enumerate(texts, start=10):
        await stored_then_died(first, n, text)
    await asyncio.sleep(BOUND)

    await asyncio.gather(first.app[SWEEPER].sweep(), second.app[SWEEPER].sweep())
    expected = sorted(f"收到：{t}" for t in texts)
    await wait_until(lambda: sorted(sent(tg_api)) == expected)
    await asyncio.gather(first.app[SWEEPER].sweep(), second.app[SWEEPER].sweep())
    assert sorted(sent(tg_api)) == expected
    assert sorted(r["message"] for r in fake_rasa.received) == sorted(texts)


async def test_a_platform_retry_of_an_unanswered_message_is_answered_not_dropped(
    gateway_with: Factory, fake_rasa: FakeRasa, db: Database
) -> None:
    gateway = await gateway_with()
    body = {"sender": "rest-user-1", "message": "井盖丢了很危险", "message_id": "m-1"}
    inbound = InboundMessage("rest", "rest-user-1", body["message"], "m-1")
    assert await gateway.app[ROUTER].receive(inbound) is not None  # stored, then the process died
    await asyncio.sleep(BOUND)

    resp = await gateway.post("/webhooks/rest/webhook", json=body)  # the integration's retry
    assert [r["text"] for r in await resp.json()] == ["收到：井盖丢了很危险"]
    again = await gateway.post("/webhooks/rest/webhook", json=body)
    assert await again.json() == []
    assert [r["message"] for r in fake_rasa.received] == ["井盖丢了很危险"]
    assert [s for _, _, s in await statuses(db)] == ["processed", "processed"]


async def test_a_turn_rasa_completed_before_the_gateway_died_is_not_asked_twice(
    gateway_with: Factory, tg_api: FakeTelegramAPI, fake_rasa: FakeRasa, db: Database
) -> None:
    gateway = await gateway_with()
    message_id = await stored_then_died(gateway, 2, "我要投诉噪音扰民")
    async with db.session() as s:
        conversation_id = (await s.get_one(Message, message_id)).conversation_id
        from store.models import Conversation

        sender = (await s.get_one(Conversation, conversation_id)).public_id
    # The dead gateway had sent the turn, and Rasa completed it.
    await gateway.app[RASA].send(sender, "我要投诉噪音扰民", {"message_id": message_id})
    await asyncio.sleep(BOUND)

    await gateway.app[SWEEPER].sweep()
    await wait_until(lambda: sent(tg_api) == ["收到：我要投诉噪音扰民"])
    assert len(fake_rasa.received) == 1


async def test_after_too_many_tries_the_citizen_is_told_sorry_and_handed_off(
    gateway_with: Factory, tg_api: FakeTelegramAPI, fake_rasa: FakeRasa, db: Database
) -> None:
    gateway = await gateway_with(answer_max_tries=1)
    await stored_then_died(gateway, 3, "这个问题一直没人回")
    await asyncio.sleep(BOUND)

    await gateway.app[SWEEPER].sweep()
    await wait_until(lambda: sent(tg_api) == [APOLOGY.text])
    assert fake_rasa.received == []
    async with db.session() as s:
        handoff = (await s.execute(select(Handoff))).scalar_one()
    assert (handoff.state, handoff.reason) == ("pending", "rasa_down")
    assert (await statuses(db))[0] == ("citizen", "这个问题一直没人回", "failed")


async def test_a_turn_that_completes_late_still_reaches_the_citizen(
    gateway_with: Factory, tg_api: FakeTelegramAPI, fake_rasa: FakeRasa, db: Database
) -> None:
    gateway = await gateway_with()
    fake_rasa.delay = 2.5  # longer than rasa_timeout (1.5 s): the form is still filing
    fake_rasa.responder = lambda sender, text: [
        {"recipient_id": sender, "text": "已为您登记工单，编号：20261126-ABCD-7"}
    ]
    resp = await gateway.post(
        "/webhooks/telegram", json=text_update(4, CHAT, "确认"), headers=HEADERS
    )
    assert resp.status == 200
    await gateway.app[TELEGRAM].drain()
    assert sent(tg_api) == [APOLOGY.text]  # within the budget: sorry, an agent will help

    await gateway.app[ROUTER].drain()  # Rasa completes the turn
    told = sent(tg_api)
    assert told[0] == APOLOGY.text  # (the hand-off queue may have spoken since)
    assert told.count("已为您登记工单，编号：20261126-ABCD-7") == 1
    assert len(fake_rasa.received) == 1
    bot_texts = [t for who, t, _ in await statuses(db) if who == "bot"]
    assert bot_texts == ["已为您登记工单，编号：20261126-ABCD-7"]
