"""The widget's WebSocket: sessions, history, buttons, bad frames, dedupe and agent pushes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.channels.web import WELCOME_LIMIT
from bot.keys import ROUTER
from bot.messages import Reply
from bot.router import Delivery
from store.db import Database
from store.models import ChannelIdentity, Conversation, Handoff, Message

WELCOME = ("bot", "您好，我是12345智能助手。")


# Waits for a frame, not sleeps: generous, so a loaded CI machine does not fail a turn that is
# merely slow; a frame that never comes still fails the test.
FRAME_WAIT_SECONDS = 20.0


async def next_frame(
    ws: aiohttp.ClientWebSocketResponse, wait: float = FRAME_WAIT_SECONDS
) -> dict[str, Any]:
    msg = await ws.receive(timeout=wait)
    assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg.type}"
    return json.loads(msg.data)


async def until(
    ws, predicate, wait: float = FRAME_WAIT_SECONDS
) -> tuple[dict[str, Any], list[dict]]:
    """Read frames until one matches; returns it and every frame read on the way."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(wait):
        while True:
            frame = await next_frame(ws, wait)
            seen.append(frame)
            if predicate(frame):
                return frame, seen


def bot_message(frame: dict[str, Any]) -> bool:
    return frame["type"] == "message" and frame["from"] == "bot"


async def open_chat(gateway: TestClient, token: str | None = None, **kw):
    ws = await gateway.ws_connect("/ws/chat", **kw)
    await ws.send_json({"type": "hello", "session": token})
    session = await next_frame(ws)
    assert session["type"] == "session"
    return ws, session


async def say(ws, text: str, client_id: str | None = None) -> dict[str, Any]:
    await ws.send_json(
        {"type": "message", "text": text, "client_id": client_id or str(uuid.uuid4())}
    )
    reply, _ = await until(ws, bot_message)
    return reply


async def conversation_of(db: Database, token: str) -> int:
    digest = hashlib.sha256(token.encode()).hexdigest()
    async with db.session() as s:
        return (
            await s.execute(
                select(Conversation.id)
                .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
                .where(ChannelIdentity.channel == "web", ChannelIdentity.external_id == digest)
            )
        ).scalar_one()


def turns(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["from"], m["text"]) for m in history]


async def test_session_is_minted_then_reused_with_history(gateway, fake_rasa) -> None:
    ws, first = await open_chat(gateway)
    token = first["session"]
    assert isinstance(token, str) and len(token) >= 40
    assert turns(first["history"]) == [WELCOME]
    reply = await say(ws, "你好")
    assert "12345" in reply["text"]
    assert {"title": "社保", "payload": "/faq_topic_si"} in reply["buttons"]
    await ws.close()

    ws, again = await open_chat(gateway, token)
    assert again["session"] == token
    assert turns(again["history"]) == [WELCOME, ("citizen", "你好"), WELCOME]
    assert again["history"][2]["buttons"][0]["title"] == "社保"
    assert all(isinstance(m["id"], int) and m["ts"] for m in again["history"])
    await ws.close()


async def test_new_session_opens_with_the_assistants_welcome_and_buttons(
    gateway, fake_rasa, db
) -> None:
    ws, session = await open_chat(gateway)
    [welcome] = session["history"]
    assert (welcome["from"], welcome["text"]) == WELCOME
    assert [b["title"] for b in welcome["buttons"]] == ["社保", "转人工"]
    [asked] = fake_rasa.received
    assert asked["message"] == "/greet" and asked["metadata"] == {"channel": "web"}
    conv = await conversation_of(db, session["session"])
    async with db.session() as s:
        stored = (await s.execute(select(Message).where(Message.conversation_id == conv))).scalars()
        assert [(m.sender, m.text) for m in stored] == [WELCOME]  # no citizen turn was invented
        public_id = (await s.get_one(Conversation, conv)).public_id
    assert asked["sender"] == public_id
    # A button of the welcome works like any other.
    await ws.send_json(
        {"type": "button", "title": "社保", "payload": "/faq_topic_si", "client_id": "w-1"}
    )
    reply, _ = await until(ws, bot_message)
    assert reply["text"] == "收到：/faq_topic_si"
    await ws.close()


async def test_welcome_comes_once_per_session_not_on_reconnect_or_in_other_tabs(
    gateway, fake_rasa
) -> None:
    ws, session = await open_chat(gateway)
    token = session["session"]
    await ws.close()
    for _ in range(2):  # a reload and a reconnect
        again, resumed = await open_chat(gateway, token)
        assert turns(resumed["history"]) == [WELCOME]
        await again.close()
    tab1, _ = await open_chat(gateway, token)
    tab2, _ = await open_chat(gateway, token)
    with pytest.raises(TimeoutError):
        await tab1.receive(timeout=0.3)  # no second welcome pushed to an open tab
    await tab1.close()
    await tab2.close()
    assert [r["message"] for r in fake_rasa.received] == ["/greet"]


async def test_without_rasa_the_session_still_opens_and_no_handoff_is_made(
    gateway, fake_rasa, db
) -> None:
    fake_rasa.status = 500
    ws, session = await open_chat(gateway)
    assert session["history"] == []  # the widget shows its own static welcome
    async with db.session() as s:
        assert (await s.execute(select(Handoff))).first() is None
    fake_rasa.status = 200
    assert (await say(ws, "在吗"))["text"] == "收到：在吗"
    await ws.close()
    again, resumed = await open_chat(gateway, session["session"])
    assert turns(resumed["history"]) == [("citizen", "在吗"), ("bot", "收到：在吗")]
    await again.close()


async def test_welcomes_are_limited_per_client_address(gateway, fake_rasa) -> None:
    limit = WELCOME_LIMIT.max_attempts
    histories = []
    for _ in range(limit + 1):
        ws, session = await open_chat(gateway)
        histories.append(session["history"])
        await ws.close()
    assert all(turns(h) == [WELCOME] for h in histories[:limit])
    assert histories[-1] == []
    # Forwarded headers from a peer that is not a trusted proxy change nothing.
    for spoofed in ({"X-Forwarded-For": "198.51.100.23"}, {"X-Real-IP": "198.51.100.24"}):
        ws, session = await open_chat(gateway, headers=spoofed)
        assert session["history"] == []
        await ws.close()
    assert len(fake_rasa.received) == limit


async def test_unknown_or_forged_token_gets_a_fresh_session(gateway) -> None:
    forged = "A" * 43
    ws, session = await open_chat(gateway, forged)
    assert session["session"] != forged
    assert turns(session["history"]) == [WELCOME]
    await ws.close()


async def test_typing_indicator_wraps_the_answer(gateway) -> None:
    ws, _ = await open_chat(gateway)
    await ws.send_json({"type": "message", "text": "在吗", "client_id": "c-1"})
    _, seen = await until(ws, lambda f: f["type"] == "typing" and f["on"] is False)
    kinds = [(f["type"], f.get("on", f.get("from"))) for f in seen]
    assert kinds[0] == ("typing", True)
    assert ("message", "bot") in kinds
    citizen = next(f for f in seen if f.get("from") == "citizen")
    assert citizen["client_id"] == "c-1" and citizen["text"] == "在吗"
    await ws.close()


async def test_button_sends_payload_and_shows_title(gateway, fake_rasa) -> None:
    ws, session = await open_chat(gateway)
    await say(ws, "你好")
    await ws.send_json(
        {"type": "button", "title": "社保", "payload": "/faq_topic_si", "client_id": "b-1"}
    )
    _, seen = await until(ws, bot_message)
    assert fake_rasa.received[-1]["message"] == "/faq_topic_si"
    echo = next(f for f in seen if f.get("from") == "citizen")
    assert echo["text"] == "社保"
    await ws.close()

    ws, again = await open_chat(gateway, session["session"])
    citizen_turns = [m["text"] for m in again["history"] if m["from"] == "citizen"]
    assert citizen_turns == ["你好", "社保"]  # not the raw payload
    await ws.close()


async def test_bad_frames_get_a_chinese_error_and_the_socket_stays_usable(gateway) -> None:
    ws = await gateway.ws_connect("/ws/chat")
    await ws.send_json({"type": "message", "text": "先说话", "client_id": "x"})
    early = await next_frame(ws)
    assert early["type"] == "error" and "会话" in early["text"]

    await ws.send_json({"type": "hello", "session": None})
    assert (await next_frame(ws))["type"] == "session"

    await ws.send_str("{not json")
    err = await next_frame(ws)
    assert err["type"] == "error" and "格式" in err["text"]

    await ws.send_str("[1, 2]")
    assert (await next_frame(ws))["type"] == "error"

    await ws.send_json({"type": "dance"})
    err = await next_frame(ws)
    assert err["type"] == "error" and "不支持" in err["text"]

    await ws.send_bytes(b"\x00\x01")
    assert (await next_frame(ws))["type"] == "error"

    reply = await say(ws, "路灯坏了")
    assert reply["text"] == "收到：路灯坏了"
    assert not ws.closed
    await ws.close()


async def test_too_long_text_is_refused_and_not_routed(gateway, fake_rasa) -> None:
    ws, _ = await open_chat(gateway)
    await ws.send_json({"type": "message", "text": "长" * 2001, "client_id": "long-1"})
    err = await next_frame(ws)
    assert err == {"type": "error", "text": "消息过长，请控制在2000字以内。", "client_id": "long-1"}
    assert [r["message"] for r in fake_rasa.received] == ["/greet"]  # only the welcome
    for blank in ("   ", "\x00\x01"):
        await ws.send_json({"type": "message", "text": blank, "client_id": "blank"})
        assert "输入内容" in (await next_frame(ws))["text"]
    assert (await say(ws, "长" * 2000))["from"] == "bot"  # the limit itself is fine
    await ws.close()


async def test_resend_with_same_client_id_calls_rasa_once(gateway, fake_rasa, db) -> None:
    ws, session = await open_chat(gateway)
    await say(ws, "我要投诉噪音", client_id="dup-1")
    await ws.send_json({"type": "message", "text": "我要投诉噪音", "client_id": "dup-1"})
    _, seen = await until(ws, lambda f: f["type"] == "typing" and f["on"] is False)
    assert [f for f in seen if f["type"] == "message"] == []
    assert [r["message"] for r in fake_rasa.received] == ["/greet", "我要投诉噪音"]
    conv = await conversation_of(db, session["session"])
    async with db.session() as s:
        texts = [
            m.text
            for m in (await s.execute(select(Message).where(Message.conversation_id == conv)))
            .scalars()
            .all()
        ]
    assert texts.count("我要投诉噪音") == 1
    await ws.close()


async def test_other_tabs_see_the_citizen_and_the_answer(gateway) -> None:
    tab1, session = await open_chat(gateway)
    tab2, _ = await open_chat(gateway, session["session"])
    await say(tab1, "你好")
    first, seen = await until(tab2, bot_message)
    assert [f["text"] for f in seen if f["type"] == "message"] == ["你好", first["text"]]
    await tab1.close()
    await tab2.close()


async def test_agent_push_reaches_open_socket_once(gateway, db) -> None:
    ws, session = await open_chat(gateway)
    await say(ws, "转人工")
    conv = await conversation_of(db, session["session"])
    ok = await gateway.app[ROUTER].push(conv, [Reply("您好，我是人工客服，请讲。", sender="agent")])
    assert ok is Delivery.DELIVERED
    frame, _ = await until(ws, lambda f: f["type"] == "message" and f["from"] == "agent")
    assert frame["text"] == "您好，我是人工客服，请讲。"
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.3)  # delivered exactly once
    await ws.close()


async def test_push_while_offline_shows_in_history(gateway, db) -> None:
    ws, session = await open_chat(gateway)
    await say(ws, "查询工单")
    await ws.close()
    conv = await conversation_of(db, session["session"])
    await gateway.app[ROUTER].push(
        conv,
        [Reply("您的工单已办结。", link="https://12345.example.gov.cn/t/1", sender="system")],
    )
    ws, again = await open_chat(gateway, session["session"])
    last = again["history"][-1]
    assert (last["from"], last["text"]) == ("system", "您的工单已办结。")
    assert last["link"] == "https://12345.example.gov.cn/t/1"
    await ws.close()


async def test_unsafe_links_are_not_sent(gateway, db) -> None:
    ws, session = await open_chat(gateway)
    await say(ws, "你好")
    conv = await conversation_of(db, session["session"])
    await gateway.app[ROUTER].push(conv, [Reply("点这里", link="javascript:alert(1)")])
    frame, _ = await until(ws, lambda f: f.get("text") == "点这里")
    assert frame["link"] is None
    await ws.close()


async def test_token_is_stored_only_as_its_hash(gateway, db) -> None:
    ws, session = await open_chat(gateway)
    await say(ws, "你好")
    await ws.close()
    token = session["session"]
    async with db.session() as s:
        ids = [i.external_id for i in (await s.execute(select(ChannelIdentity))).scalars()]
    assert ids == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in ids


async def test_foreign_origin_is_refused(gateway, settings) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await gateway.ws_connect("/ws/chat", origin="https://evil.example")
    assert exc.value.status == 403
    settings.web_allowed_origins = "https://www.example.gov.cn, https://portal.example.gov.cn"
    ws, _ = await open_chat(gateway, origin="https://portal.example.gov.cn")
    await ws.close()
    ws, _ = await open_chat(gateway, origin="http://localhost:5173")
    await ws.close()


async def test_widget_script_and_demo_page(gateway) -> None:
    js = await gateway.get("/static/widget.js")
    assert js.status == 200
    assert js.headers["Access-Control-Allow-Origin"] == "*"
    assert "javascript" in js.headers["Content-Type"]
    assert "innerHTML" not in await js.text()

    page = await gateway.get("/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = await page.text()
    assert '<script src="/static/widget.js" defer></script>' in html
    assert html.count("<script") == 1
    assert "Access-Control-Allow-Origin" not in page.headers

    css = await gateway.get("/static/widget.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]
    assert "Access-Control-Allow-Origin" not in css.headers


async def test_push_reaches_a_socket_held_by_another_gateway_process(settings, db) -> None:
    """Two gateways share the store and Redis: a push made in one reaches the tab held by the
    other, exactly once, and the tab in the pushing process gets it once too."""
    from aiohttp.test_utils import TestServer

    from bot.app import create_app
    from tests.conftest import REDIS_URL

    shared = settings.model_copy(update={"redis_url": REDIS_URL})
    one = TestClient(TestServer(create_app(shared), host="127.0.0.1"))
    two = TestClient(TestServer(create_app(shared), host="127.0.0.1"))
    await one.start_server()
    await two.start_server()
    try:
        here, session = await open_chat(one)
        await say(here, "你好")
        there, _ = await open_chat(two, session["session"])
        await asyncio.sleep(0.2)  # let process two's bus subscription settle
        conv = await conversation_of(db, session["session"])
        await one.app[ROUTER].push(conv, [Reply("人工客服已接入。", sender="agent")])
        for ws in (here, there):
            frame, _ = await until(ws, lambda f: f.get("from") == "agent")
            assert frame["text"] == "人工客服已接入。"
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=0.3)
        await say(there, "谢谢")  # a turn in process two shows in process one's tab
        frame, _ = await until(here, lambda f: f.get("text") == "收到：谢谢")
        await here.close()
        await there.close()
    finally:
        await one.close()
        await two.close()
