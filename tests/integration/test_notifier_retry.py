"""Status pushes are at least once per channel: a channel that fails for now (Telegram 502,
WeChat "system error") is tried again when the outbox row is retried, while the citizen's
other channels, told on the first attempt, are not told twice; a permanent refusal (a blocked
bot, an unsubscribed follower) is written down and not retried.

The citizen files from Telegram and has WeChat and a widget session linked. Both platforms are
the local fakes. The test drives its own Notifier without backoff (`deliver_pending()`), next
to the gateway's own one, instead of sleeping through the real backoff.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import create_app
from bot.keys import CIPHER
from bot.notifier import NOTICE_LABELS, NOTIFIER, Notifier
from bot.settings import Settings
from store.db import Database
from store.models import Outbox, utcnow
from tests.builders import file_order, linked_citizen, move
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.integration.outbox_helpers import system_messages
from tests.integration.test_console_helpers import Console, make_agent, unique, wait_until

CHAT = 515151
CUSTOM_SEND = "/cgi-bin/message/custom/send"


@dataclass
class Citizen:
    """One citizen's three channels and the work order they filed from Telegram."""

    openid: str
    web_id: str
    order_id: int
    tracking_no: str


@pytest.fixture
async def wechat_api() -> AsyncIterator[FakeWeChatAPI]:
    fake = FakeWeChatAPI("wx" + secrets.token_hex(8), "retry-wechat-secret")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def gateway_all(
    settings: Settings, db: Database, tg_api: FakeTelegramAPI, wechat_api: FakeWeChatAPI
) -> AsyncIterator[TestClient]:
    """The gateway with Telegram and WeChat pointed at their fakes."""
    update = {
        "telegram_token": SecretStr(TOKEN),
        "telegram_secret_token": SecretStr("retry_webhook-secret"),
        "telegram_api_base": tg_api.base_url,
        "wechat_token": SecretStr("retry-wechat-token"),
        "wechat_app_id": wechat_api.app_id,
        "wechat_app_secret": SecretStr(wechat_api.app_secret),
        "wechat_api_base": wechat_api.url,
    }
    app = create_app(settings.model_copy(update=update))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
def notifier(gateway_all: TestClient) -> Notifier:
    """A notifier of the same gateway whose failed rows are due again at once."""
    return Notifier(gateway_all.app, backoff=lambda attempts: timedelta(0))


@pytest.fixture
async def citizen(gateway_all: TestClient, db: Database) -> Citizen:
    openid, web_id = "o" + secrets.token_hex(12), secrets.token_hex(32)
    async with db.session() as s:
        conv = await linked_citizen(s, "telegram", str(CHAT), ("wechat", openid), ("web", web_id))
        order = await file_order(s, gateway_all.app[CIPHER], conv)
        return Citizen(openid, web_id, order.id, order.tracking_no)


async def settle(notifier: Notifier, db: Database, order_id: int, what: str) -> Outbox:
    """Run the notifier until the row of one status change is delivered or given up on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15.0
    while True:
        await notifier.deliver_pending()
        async with db.session() as s:
            rows = (await s.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
        for row in rows:
            p = row.payload
            if p.get("work_order_id") == order_id and p.get("what") == what:
                if row.delivered_at is not None or row.gave_up_at is not None:
                    return row
        if loop.time() > deadline:
            raise TimeoutError(f"status {what} of order {order_id} was not settled")
        await asyncio.sleep(0.05)


def sent_to_telegram(tg_api: FakeTelegramAPI) -> list[str]:
    return [p["text"] for p in tg_api.called("sendMessage") if str(p["chat_id"]) == str(CHAT)]


async def test_a_citizen_whose_telegram_was_briefly_down_is_told_once_everywhere(
    db: Database,
    notifier: Notifier,
    citizen: Citizen,
    tg_api: FakeTelegramAPI,
    wechat_api: FakeWeChatAPI,
) -> None:
    tg_api.down = 1  # the first sendMessage gets 502 Bad Gateway
    await move(db, citizen.order_id, "dispatched")
    row = await settle(notifier, db, citizen.order_id, "dispatched")

    assert row.delivered_at is not None and row.attempts == 2 and row.last_error is None
    [(to, text)] = wechat_api.sent_texts  # told on the first attempt only
    assert to == citizen.openid and text.startswith(f"您的工单 {citizen.tracking_no} 已派至")
    assert sent_to_telegram(tg_api) == [text, text]  # refused with 502, then accepted
    [on_web] = await system_messages(db, "web", citizen.web_id)
    assert on_web.text == text
    # Telegram's history holds the notice once, delivered, not a failed copy plus a good one.
    [on_telegram] = await system_messages(db, "telegram", str(CHAT))
    assert on_telegram.text == text and on_telegram.status == "processed"
    assert "undelivered" not in (on_telegram.payload or {})

    # The next change goes out normally, once per channel.
    await move(db, citizen.order_id, "in_progress")
    row = await settle(notifier, db, citizen.order_id, "in_progress")
    assert row.attempts == 1
    assert sent_to_telegram(tg_api)[-1] == f"您的工单 {citizen.tracking_no} 正在办理中。"
    assert len(sent_to_telegram(tg_api)) == 3 and len(wechat_api.sent_texts) == 2
    assert len(await system_messages(db, "web", citizen.web_id)) == 2


async def test_wechat_system_error_is_retried_without_telling_telegram_twice(
    db: Database,
    notifier: Notifier,
    citizen: Citizen,
    tg_api: FakeTelegramAPI,
    wechat_api: FakeWeChatAPI,
) -> None:
    wechat_api.errors.append(-1)  # {"errcode": -1, "errmsg": "system error"}
    await move(db, citizen.order_id, "dispatched")
    row = await settle(notifier, db, citizen.order_id, "dispatched")

    assert row.delivered_at is not None and row.attempts == 2 and row.last_error is None
    attempts = wechat_api.calls_to(CUSTOM_SEND)
    assert [c["accepted"] for c in attempts] == [False, True]
    [(to, text)] = wechat_api.sent_texts
    assert to == citizen.openid and text.startswith(f"您的工单 {citizen.tracking_no} 已派至")
    assert sent_to_telegram(tg_api) == [text]
    assert [m.text for m in await system_messages(db, "web", citizen.web_id)] == [text]
    [on_wechat] = await system_messages(db, "wechat", citizen.openid)
    assert on_wechat.status == "processed"


async def test_a_blocked_bot_is_written_down_and_not_retried(
    gateway_all: TestClient,
    settings: Settings,
    db: Database,
    notifier: Notifier,
    citizen: Citizen,
    tg_api: FakeTelegramAPI,
    wechat_api: FakeWeChatAPI,
) -> None:
    tg_api.blocked.add(str(CHAT))  # 403 Forbidden: bot was blocked by the user
    await move(db, citizen.order_id, "dispatched")
    row = await settle(notifier, db, citizen.order_id, "dispatched")

    assert row.delivered_at is not None and row.attempts == 1
    assert re.fullmatch(r"not delivered on: telegram identity \d+", row.last_error)
    for _ in range(3):
        await notifier.deliver_pending()
    assert len(tg_api.called("sendMessage")) == 1
    assert len(wechat_api.sent_texts) == 1
    assert len(await system_messages(db, "web", citizen.web_id)) == 1
    [on_telegram] = await system_messages(db, "telegram", str(CHAT))
    assert on_telegram.status == "failed"
    assert "blocked" in on_telegram.payload["undelivered"]
    _, listed = await board(gateway_all, settings)  # the supervisor sees who was not told
    [notice] = listed["notices"]
    assert (notice["tracking_no"], notice["channel"]) == (citizen.tracking_no, "telegram")
    assert notice["state"] == "refused" and "blocked" in notice["reason"]


async def test_a_refusal_noted_on_the_first_attempt_stays_noted_after_the_retry(
    db: Database,
    notifier: Notifier,
    citizen: Citizen,
    tg_api: FakeTelegramAPI,
    wechat_api: FakeWeChatAPI,
) -> None:
    tg_api.down = 1
    wechat_api.errors.append(43004)  # the follower unsubscribed: permanent
    await move(db, citizen.order_id, "dispatched")
    row = await settle(notifier, db, citizen.order_id, "dispatched")

    assert row.delivered_at is not None and row.attempts == 2
    assert re.fullmatch(r"not delivered on: wechat identity \d+", row.last_error)
    assert len(wechat_api.calls_to(CUSTOM_SEND)) == 1  # not retried
    assert len(sent_to_telegram(tg_api)) == 2
    [on_wechat] = await system_messages(db, "wechat", citizen.openid)
    assert on_wechat.status == "failed"


async def board(gateway: TestClient, settings: Settings, role: str = "supervisor") -> Any:
    """What the supervisor board lists as undelivered notices (the HTTP response)."""
    name = unique(role)
    await make_agent(settings.database_url, name, role)
    console = Console(gateway)
    try:
        assert (await console.login(name)).status == 200
        resp = await console.get("/console/api/undelivered-notices")
        return resp.status, (await resp.json() if resp.status == 200 else None)
    finally:
        await console.close()


async def status_row(db: Database, order_id: int, what: str) -> Outbox:
    async with db.session() as s:
        rows = (await s.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    [row] = [
        r
        for r in rows
        if r.payload.get("work_order_id") == order_id and r.payload.get("what") == what
    ]
    return row


async def test_a_channel_down_past_the_retry_period_is_given_up_and_shown_on_the_board(
    gateway_all: TestClient,
    settings: Settings,
    db: Database,
    citizen: Citizen,
    tg_api: FakeTelegramAPI,
    wechat_api: FakeWeChatAPI,
) -> None:
    notifier = Notifier(
        gateway_all.app, backoff=lambda attempts: timedelta(0), retry_for=timedelta(seconds=1)
    )
    tg_api.down = 1000
    await move(db, citizen.order_id, "dispatched")
    row = await settle(notifier, db, citizen.order_id, "dispatched")

    assert row.delivered_at is None and row.gave_up_at is not None
    assert re.fullmatch(r"retry on: telegram identity \d+", row.last_error)
    tries = len(sent_to_telegram(tg_api))
    assert tries == row.attempts >= 1  # (the gateway's own notifier may have made some)
    assert len(wechat_api.sent_texts) == 1
    assert len(await system_messages(db, "web", citizen.web_id)) == 1
    [on_telegram] = await system_messages(db, "telegram", str(CHAT))
    assert on_telegram.status == "failed"
    assert "Bad Gateway" in on_telegram.payload["undelivered"]
    await notifier.deliver_pending()
    assert len(sent_to_telegram(tg_api)) == tries  # given up: no further tries

    status, listed = await board(gateway_all, settings)
    assert status == 200
    [notice] = listed["notices"]
    assert notice["tracking_no"] == citizen.tracking_no
    assert (notice["channel"], notice["state"]) == ("telegram", "given_up")
    assert notice["label"] == NOTICE_LABELS["dispatched"]
    assert "Bad Gateway" in notice["reason"]
    assert (await board(gateway_all, settings, role="agent"))[0] == 403


async def test_after_an_outage_an_old_notice_backs_off_from_its_last_attempt(
    gateway_all: TestClient, db: Database, citizen: Citizen, tg_api: FakeTelegramAPI
) -> None:
    """Not from when it was written: a notice written two hours ago, during an outage, does
    not burn its tries in a burst once the gateway is back."""
    notifier = Notifier(gateway_all.app)  # the real backoff
    tg_api.down = 1000
    await move(db, citizen.order_id, "dispatched")
    async with db.session() as s:  # written two hours ago, while the gateway was down
        row = await s.get_one(Outbox, (await status_row(db, citizen.order_id, "dispatched")).id)
        row.created_at = utcnow() - timedelta(hours=2)
    for _ in range(6):
        await notifier.deliver_pending()

    row = await status_row(db, citizen.order_id, "dispatched")
    assert row.attempts == 1 and row.delivered_at is None and row.gave_up_at is None
    assert row.next_attempt_at is not None and row.next_attempt_at > utcnow()
    assert len(sent_to_telegram(tg_api)) == 1

    tg_api.down = 0  # Telegram is back: the notice goes out when it is due again
    row = await settle(notifier, db, citizen.order_id, "dispatched")
    assert row.delivered_at is not None and row.attempts == 2
    assert len(sent_to_telegram(tg_api)) == 2


async def test_a_push_killed_half_way_is_made_again(
    gateway_all: TestClient,
    db: Database,
    notifier: Notifier,
    citizen: Citizen,
    tg_api: FakeTelegramAPI,
    wechat_api: FakeWeChatAPI,
) -> None:
    """The channel's "told" key is set after the push, so a gateway killed while Telegram has
    not answered yet tells Telegram again after the restart instead of never."""
    tg_api.stall = asyncio.Event()
    await move(db, citizen.order_id, "dispatched")
    # The gateway's own notifier pushes; Telegram has not answered when the gateway dies.
    await wait_until(lambda: len(tg_api.called("sendMessage")) == 1)
    await gateway_all.app[NOTIFIER].stop()
    tg_api.stall.set()
    tg_api.stall = None

    row = await settle(notifier, db, citizen.order_id, "dispatched")  # after the restart
    assert row.delivered_at is not None
    text = sent_to_telegram(tg_api)[0]
    assert sent_to_telegram(tg_api) == [text, text]
    [on_telegram] = await system_messages(db, "telegram", str(CHAT))
    assert on_telegram.text == text and on_telegram.status == "processed"
    assert [t for _, t in wechat_api.sent_texts] == [text]
