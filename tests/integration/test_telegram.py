"""The Telegram channel against a local fake Bot API (never the real one) and the fake Rasa."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import create_app
from bot.channels.base import DeliveryError
from bot.channels.telegram import ONLY_TEXT, TELEGRAM
from bot.keys import CHANNELS, ROUTER
from bot.messages import Button, Reply
from bot.router import MEDIA_NOTICE, Delivery
from bot.settings import Settings
from store import handoffs
from store.db import Database
from store.models import ChannelIdentity, Conversation, Message
from tests.conftest import database_of
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram_api import (
    TOKEN,
    FakeTelegramAPI,
    callback_update,
    document_update,
    location_update,
    photo_update,
    sticker_update,
    text_update,
    voice_update,
)

SECRET = "s3cret_webhook-token"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
CHAT = 424242


@pytest.fixture
def tg_settings(settings: Settings, tg_api: FakeTelegramAPI) -> Settings:
    return settings.model_copy(
        update={
            "telegram_token": SecretStr(TOKEN),
            "telegram_secret_token": SecretStr(SECRET),
            "telegram_api_base": tg_api.base_url,
            "telegram_webhook_url": "https://hotline.example.cn/webhooks/telegram",
        }
    )


@pytest.fixture
async def tg(tg_settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    app = create_app(tg_settings)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def post_update(client: TestClient, body: dict, headers: dict | None = None) -> int:
    """POST an update like Telegram does and wait until the gateway has processed it."""
    resp = await client.post("/webhooks/telegram", json=body, headers=headers or HEADERS)
    await client.app[TELEGRAM].drain()
    return resp.status


async def test_startup_registers_webhook_with_secret(tg, tg_api) -> None:
    assert tg_api.called("getMe")
    hook = tg_api.webhook
    assert hook["url"] == "https://hotline.example.cn/webhooks/telegram"
    assert hook["secret_token"] == SECRET
    assert hook["allowed_updates"] == ["message", "callback_query"]
    assert tg.app[CHANNELS].get("telegram") is not None


@pytest.mark.parametrize("headers", [{}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}])
async def test_missing_or_wrong_secret_is_refused(tg, tg_api, fake_rasa, headers) -> None:
    status = await post_update(tg, text_update(1, CHAT, "你好"), headers=headers or {"X": "y"})
    assert status == 403
    assert fake_rasa.received == []
    assert tg_api.called("sendMessage") == []


async def test_text_message_is_answered_in_the_same_chat(tg, tg_api, fake_rasa, settings) -> None:
    assert await post_update(tg, text_update(10, CHAT, "路灯坏了", first_name="阿明")) == 200
    assert fake_rasa.received[-1]["message"] == "路灯坏了"
    sent = tg_api.called("sendMessage")
    assert len(sent) == 1
    assert sent[0]["chat_id"] == str(CHAT)
    assert sent[0]["text"] == "收到：路灯坏了"
    db = database_of(settings)
    async with db.session() as s:
        identity = (await s.execute(select(ChannelIdentity))).scalar_one()
        texts = [m.text for m in (await s.execute(select(Message).order_by(Message.id))).scalars()]
    await db.close()
    assert (identity.channel, identity.external_id) == ("telegram", str(CHAT))
    assert identity.display_name == "阿明"
    assert texts == ["路灯坏了", "收到：路灯坏了"]


async def test_buttons_become_an_inline_keyboard(tg, tg_api) -> None:
    await post_update(tg, text_update(11, CHAT, "你好"))
    sent = tg_api.called("sendMessage")[-1]
    keyboard = sent["reply_markup"]["inline_keyboard"]
    assert [row[0]["text"] for row in keyboard] == ["社保", "转人工"]
    assert [row[0]["callback_data"] for row in keyboard] == ["/faq_topic_si", "/request_human"]


async def test_pressed_button_is_acknowledged_and_reaches_rasa(tg, tg_api, fake_rasa) -> None:
    await post_update(tg, callback_update(12, CHAT, "/request_human", message_id=5))
    assert tg_api.called("answerCallbackQuery")[0]["callback_query_id"] == "cbq12"
    assert fake_rasa.received[-1]["message"] == "/request_human"
    edit = tg_api.called("editMessageReplyMarkup")[0]
    assert (edit["chat_id"], edit["message_id"]) == (str(CHAT), "5")
    assert tg_api.called("sendMessage")[-1]["text"] == "收到：/request_human"


async def test_duplicate_update_is_processed_once(tg, tg_api, fake_rasa) -> None:
    for _ in range(3):
        assert await post_update(tg, text_update(13, CHAT, "重复的消息")) == 200
    assert [r["message"] for r in fake_rasa.received] == ["重复的消息"]
    assert len(tg_api.called("sendMessage")) == 1


async def test_an_update_that_cannot_be_stored_is_refused_and_answered_when_sent_again(
    tg, tg_api, fake_rasa, db
) -> None:
    """Store first, then acknowledge: a database error answers 503 (Telegram sends the update
    again) instead of 200 for an update that was never stored."""
    await post_update(tg, text_update(30, CHAT, "你好"))  # the conversation exists already
    async with db.engine.begin() as conn:  # the message table is unavailable for a moment
        await conn.exec_driver_sql("ALTER TABLE message RENAME TO message_away")
    try:
        status = await post_update(tg, text_update(31, CHAT, "路口红绿灯不亮了"))
    finally:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE message_away RENAME TO message")
    assert status == 503

    assert await post_update(tg, text_update(31, CHAT, "路口红绿灯不亮了")) == 200  # re-sent
    assert [r["message"] for r in fake_rasa.received] == ["你好", "路口红绿灯不亮了"]
    assert tg_api.called("sendMessage")[-1]["text"] == "收到：路口红绿灯不亮了"
    assert len(tg_api.called("sendMessage")) == 2


async def test_long_payload_round_trips_through_a_short_key(tg, tg_api, fake_rasa) -> None:
    payload = '/choose_category{"category":"劳动保障","sub":"拖欠农民工工资与社会保险缴纳"}'
    assert len(payload.encode()) > 64
    fake_rasa.responder = lambda sender, text: [
        {
            "recipient_id": sender,
            "text": "请选择类别",
            "buttons": [{"title": "劳动", "payload": payload}],
        }
    ]
    await post_update(tg, text_update(14, CHAT, "投诉"))
    data = tg_api.called("sendMessage")[-1]["reply_markup"]["inline_keyboard"][0][0][
        "callback_data"
    ]
    assert data.startswith("k:") and len(data.encode()) <= 64
    await post_update(tg, callback_update(15, CHAT, data))
    assert fake_rasa.received[-1]["message"] == payload


async def test_unknown_short_key_gets_a_polite_answer(tg, tg_api, fake_rasa) -> None:
    await post_update(tg, callback_update(16, CHAT, "k:doesnotexist"))
    assert fake_rasa.received == []
    assert tg_api.called("answerCallbackQuery")
    assert "失效" in tg_api.called("sendMessage")[-1]["text"]


async def test_malformed_json_is_400_and_nothing_is_processed(tg, tg_api, fake_rasa) -> None:
    for body in (b"{not json", b"[1, 2]", b'{"message": {}}'):
        resp = await tg.post(
            "/webhooks/telegram",
            data=body,
            headers={**HEADERS, "Content-Type": "application/json"},
        )
        assert resp.status == 400
    assert fake_rasa.received == []


async def citizen_messages(settings: Settings) -> list[Message]:
    db = database_of(settings)
    try:
        async with db.session() as s:
            stmt = select(Message).where(Message.sender == "citizen").order_by(Message.id)
            return list((await s.execute(stmt)).scalars())
    finally:
        await db.close()


# (update, the stored text, the stored attachment)
MEDIA = {
    "photo": (
        photo_update(30, CHAT),
        "[图片]",
        {
            "kind": "image",
            "media_id": "AgAD1large",
            "file_unique_id": "u1l",
            "width": 1280,
            "height": 960,
        },
    ),
    "photo_with_caption": (
        photo_update(31, CHAT, caption="门口的路灯"),
        "[图片]\n门口的路灯",
        {
            "kind": "image",
            "media_id": "AgAD1large",
            "file_unique_id": "u1l",
            "width": 1280,
            "height": 960,
        },
    ),
    "document": (
        document_update(32, CHAT),
        "[文件] 营业执照.pdf",
        {
            "kind": "file",
            "media_id": "BQACdoc1",
            "file_name": "营业执照.pdf",
            "mime_type": "application/pdf",
        },
    ),
    "voice": (
        voice_update(33, CHAT),
        "[语音]",
        {"kind": "voice", "media_id": "AwACvoice1", "mime_type": "audio/ogg"},
    ),
    "location": (
        location_update(34, CHAT),
        "[位置] (30.274085, 120.15507)",
        {"kind": "location", "lat": 30.274085, "lng": 120.15507},
    ),
    "venue": (
        location_update(35, CHAT, venue={"title": "市民中心", "address": "幸福路8号"}),
        "[位置] 市民中心 幸福路8号 (30.274085, 120.15507)",
        {"kind": "location", "label": "市民中心 幸福路8号", "lat": 30.274085, "lng": 120.15507},
    ),
}


@pytest.mark.parametrize("case", list(MEDIA))
async def test_media_is_stored_then_answered_with_the_text_only_notice(
    tg, tg_api, fake_rasa, tg_settings, case
) -> None:
    update, text, stored = MEDIA[case]
    assert await post_update(tg, update) == 200
    assert fake_rasa.received == []
    assert [m["text"] for m in tg_api.called("sendMessage")] == [MEDIA_NOTICE.text]
    [msg] = await citizen_messages(tg_settings)
    assert (msg.text, msg.payload, msg.status) == (text, {"attachments": [stored]}, "processed")
    assert await post_update(tg, update) == 200  # Telegram's redelivery: nothing new
    assert len(await citizen_messages(tg_settings)) == 1
    assert len(tg_api.called("sendMessage")) == 1


async def test_media_while_an_agent_owns_the_chat_is_stored_silently(
    tg, tg_api, fake_rasa, tg_settings
) -> None:
    await post_update(tg, text_update(40, CHAT, "转人工"))
    db = database_of(tg_settings)
    try:
        async with db.session() as s:
            conv = (await s.execute(select(Conversation))).scalar_one()
            await handoffs.request(s, conv, "request_human")
    finally:
        await db.close()
    sent = len(tg_api.called("sendMessage"))
    await post_update(tg, photo_update(41, CHAT))
    assert len(tg_api.called("sendMessage")) == sent  # the bot stays silent
    assert [m.text for m in await citizen_messages(tg_settings)] == ["转人工", "[图片]"]
    assert len(fake_rasa.received) == 1


async def test_sticker_gets_the_notice_and_is_not_stored(
    tg, tg_api, fake_rasa, tg_settings
) -> None:
    await post_update(tg, sticker_update(17, CHAT))
    assert fake_rasa.received == []
    assert tg_api.called("sendMessage")[-1]["text"] == ONLY_TEXT
    assert await citizen_messages(tg_settings) == []


async def test_group_chats_are_ignored(tg, tg_api, fake_rasa) -> None:
    body = text_update(18, -100200, "大家好")
    body["message"]["chat"] = {"id": -100200, "type": "supergroup", "title": "群"}
    await post_update(tg, body)
    assert fake_rasa.received == []
    assert tg_api.called("sendMessage") == []


async def test_send_to_blocked_user_raises_and_unsubscribes(tg, tg_api, settings) -> None:
    await post_update(tg, text_update(19, CHAT, "在吗"))
    tg_api.blocked.add(str(CHAT))
    with pytest.raises(DeliveryError) as info:
        await tg.app[TELEGRAM].send(str(CHAT), [Reply("您的工单已办结")])
    assert info.value.retry is False  # blocked stays blocked until they write again
    db = database_of(settings)
    async with db.session() as s:
        identity = (await s.execute(select(ChannelIdentity))).scalar_one()
    assert identity.subscribed is False
    # Writing again means the citizen unblocked the bot.
    tg_api.blocked.clear()
    await post_update(tg, text_update(20, CHAT, "我回来了"))
    async with db.session() as s:
        identity = (await s.execute(select(ChannelIdentity))).scalar_one()
    await db.close()
    assert identity.subscribed is True


async def test_push_through_router_reports_refusal(tg, tg_api) -> None:
    await post_update(tg, text_update(21, CHAT, "在吗"))
    db = tg.app[ROUTER].db
    async with db.session() as s:
        conv_id = (await s.execute(select(Message.conversation_id))).scalars().first()
    router = tg.app[ROUTER]
    assert await router.push(conv_id, [Reply("进度更新", sender="system")]) is Delivery.DELIVERED
    tg_api.down = 1  # 502 Bad Gateway: may pass later
    assert await router.push(conv_id, [Reply("进度更新", sender="system")]) is Delivery.RETRY
    tg_api.blocked.add(str(CHAT))
    assert await router.push(conv_id, [Reply("进度更新", sender="system")]) is Delivery.FAILED


async def test_a_keyed_push_is_stored_once_however_often_it_is_retried(tg, tg_api) -> None:
    await post_update(tg, text_update(22, CHAT, "在吗"))
    router = tg.app[ROUTER]
    async with router.db.session() as s:
        conv_id = (await s.execute(select(Message.conversation_id))).scalars().first()
    notice = [Reply("您的工单已派单。", sender="system")]
    tg_api.down = 2
    assert await router.push(conv_id, notice, key="outbox:7") is Delivery.RETRY
    assert await router.push(conv_id, notice, key="outbox:7") is Delivery.RETRY
    assert await router.push(conv_id, notice, key="outbox:7") is Delivery.DELIVERED
    async with router.db.session() as s:
        rows = (await s.execute(select(Message))).scalars().all()
        stored = [m for m in rows if m.text == "您的工单已派单。"]  # text is encrypted
    [message] = stored
    assert message.status == "processed" and "undelivered" not in (message.payload or {})
    assert [p["text"] for p in tg_api.called("sendMessage")][-3:] == ["您的工单已派单。"] * 3


async def test_flood_limit_is_waited_out(tg, tg_api) -> None:
    tg_api.flood = 1
    tg_api.retry_after = 1
    await tg.app[TELEGRAM].send(str(CHAT), [Reply("稍后送达")])
    sent = tg_api.called("sendMessage")
    assert len(sent) == 2 and sent[-1]["text"] == "稍后送达"


async def test_flood_limit_that_outlasts_the_waiting_is_worth_retrying(tg, tg_api) -> None:
    tg_api.flood = 3  # 429 retry_after 1, more often than the rate limiter waits it out
    tg_api.retry_after = 1
    with pytest.raises(DeliveryError) as info:
        await tg.app[TELEGRAM].send(str(CHAT), [Reply("稍后送达")])
    assert info.value.retry is True
    assert len(tg_api.called("sendMessage")) == 3
    await tg.app[TELEGRAM].send(str(CHAT), [Reply("稍后送达")])
    assert len(tg_api.called("sendMessage")) == 4


async def test_long_text_and_plain_http_link_are_delivered(tg, tg_api) -> None:
    reply = Reply("长" * 5000, buttons=(Button("好", "/affirm"),), link="http://127.0.0.1/x")
    await tg.app[TELEGRAM].send(str(CHAT), [reply])
    first, second = tg_api.called("sendMessage")
    assert len(first["text"]) == 4096 and "reply_markup" not in first
    assert second["text"].endswith("http://127.0.0.1/x")
    assert second["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "/affirm"
    await tg.app[TELEGRAM].send(str(CHAT), [Reply("查看", link="https://12345.example.cn/q")])
    keyboard = tg_api.called("sendMessage")[-1]["reply_markup"]["inline_keyboard"]
    assert keyboard[0][0]["url"] == "https://12345.example.cn/q"


async def test_channel_is_off_without_token(gateway) -> None:
    resp = await gateway.post("/webhooks/telegram", json={"update_id": 1})
    assert resp.status in (404, 405)
    assert gateway.app[CHANNELS].get("telegram") is None


async def test_unreachable_bot_api_does_not_stop_the_gateway(
    settings: Settings, db: Database, fake_rasa: FakeRasa
) -> None:
    dead = settings.model_copy(
        update={
            "telegram_token": SecretStr(TOKEN),
            "telegram_secret_token": SecretStr(SECRET),
            "telegram_api_base": "http://127.0.0.1:9/bot",
        }
    )
    client = TestClient(TestServer(create_app(dead), host="127.0.0.1"))
    await client.start_server()
    try:
        health = await client.get("/webhooks/rest/")
        assert health.status == 200
        resp = await client.post(
            "/webhooks/telegram", json=text_update(1, CHAT, "hi"), headers=HEADERS
        )
        assert resp.status == 503  # Telegram will retry later
        with pytest.raises(DeliveryError) as info:
            await client.app[TELEGRAM].send(str(CHAT), [Reply("x")])
        assert info.value.retry is True  # it may be reachable later
    finally:
        await client.close()


async def test_link_code_from_rest_is_redeemed_in_telegram(tg, tg_api, fake_rasa) -> None:
    resp = await tg.post("/webhooks/rest/webhook", json={"sender": "kiosk-7", "message": "绑定"})
    issued = (await resp.json())[0]["text"]
    code = re.search(r"\b(\d{6})\b", issued).group(1)
    await post_update(tg, text_update(30, CHAT, f"绑定 {code}"))
    answer = tg_api.called("sendMessage")[-1]["text"]
    assert "绑定成功" in answer and "Telegram" in answer
    assert fake_rasa.received == []  # link commands never reach Rasa
    async with tg.app[ROUTER].db.session() as s:
        owners = set((await s.execute(select(ChannelIdentity.citizen_id))).scalars())
    assert len(owners) == 1
