"""Console API behaviour an agent notices: roles, claiming races, replies, notes, masking and
reveal, auto-assignment by presence, expiry, taking over a bot conversation."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.console.live import Watcher
from bot.keys import CHANNELS, DB, SETTINGS
from store import conversations
from store.db import Database
from store.models import AuditLog, Handoff, Message, utcnow
from tests.conftest import REDIS_URL
from tests.integration.test_console_helpers import (
    Console,
    RecordingChannel,
    claim_by_hand,
    make_agent,
    next_event,
    unique,
    wait_until,
)


@pytest.fixture
def settings(settings):
    """Claims by hand unless a test turns auto-assign on; open around the clock."""
    return claim_by_hand(settings)


async def _open_handoff(gateway, fake_rasa, sender: str, text: str = "转人工") -> str:
    fake_rasa.status = 500
    await gateway.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    fake_rasa.status = 200
    return await _handoff_id(gateway, sender)


async def _handoff_id(gateway, sender: str) -> str:
    async with gateway.app[DB].session() as s:
        conv = await conversations.ensure_conversation(s, "rest", sender)
        return (
            (await s.execute(select(Handoff).where(Handoff.conversation_id == conv.id)))
            .scalars()
            .one()
            .public_id
        )


async def _signed_in(gateway, settings, role: str = "agent") -> Console:
    name = unique(role)
    await make_agent(settings.database_url, name, role)
    console = Console(gateway)
    assert (await console.login(name)).status == 200
    return console


async def _audit(database_url: str) -> list[str]:
    db = Database(database_url)
    async with db.session() as s:
        rows = [f"{a.action} {a.target}" for a in (await s.execute(select(AuditLog))).scalars()]
    await db.close()
    return rows


async def test_agent_cannot_reassign_supervisor_can(gateway, fake_rasa, settings) -> None:
    hid = await _open_handoff(gateway, fake_rasa, "r1")
    agent = await _signed_in(gateway, settings)
    other = await _signed_in(gateway, settings)
    boss = await _signed_in(gateway, settings, "supervisor")
    try:
        assert (await agent.post(f"/console/api/handoffs/{hid}/claim")).status == 200
        me = await (await other.get("/console/api/me")).json()
        refused = await agent.post(
            f"/console/api/handoffs/{hid}/reassign", {"agent_id": me["agent"]["id"]}
        )
        assert refused.status == 403
        moved = await boss.post(
            f"/console/api/handoffs/{hid}/reassign", {"agent_id": me["agent"]["id"]}
        )
        assert moved.status == 200
        assert (await moved.json())["handoff"]["agent"]["id"] == me["agent"]["id"]
        # The first agent no longer owns it: replying is refused; the new owner may.
        denied = await agent.post(f"/console/api/handoffs/{hid}/reply", {"text": "在吗"})
        assert denied.status == 403
        assert (
            await other.post(f"/console/api/handoffs/{hid}/reply", {"text": "在"})
        ).status == 200
    finally:
        for c in (agent, other, boss):
            await c.close()
    assert any(a.startswith(f"reassign handoff:{hid}") for a in await _audit(settings.database_url))


async def test_reply_needs_a_claim_and_text(gateway, fake_rasa, settings) -> None:
    hid = await _open_handoff(gateway, fake_rasa, "r2")
    agent = await _signed_in(gateway, settings)
    try:
        assert (
            await agent.post(f"/console/api/handoffs/{hid}/reply", {"text": "hi"})
        ).status == 409
        await agent.post(f"/console/api/handoffs/{hid}/claim")
        assert (await agent.post(f"/console/api/handoffs/{hid}/reply", {"text": " "})).status == 400
        long = "长" * 2001
        assert (
            await agent.post(f"/console/api/handoffs/{hid}/reply", {"text": long})
        ).status == 400
        assert (await agent.post("/console/api/handoffs/nope/claim")).status == 404
    finally:
        await agent.close()


async def test_second_claim_loses_cleanly(gateway, fake_rasa, settings) -> None:
    hid = await _open_handoff(gateway, fake_rasa, "r3")
    a, b = await _signed_in(gateway, settings), await _signed_in(gateway, settings)
    try:
        assert (await a.post(f"/console/api/handoffs/{hid}/claim")).status == 200
        taken = await b.post(f"/console/api/handoffs/{hid}/claim")
        assert taken.status == 409 and "已被处理" in (await taken.json())["error"]
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_claims_with_redis_only_one_wins(settings, db, fake_rasa) -> None:
    app = create_app(settings.model_copy(update={"redis_url": REDIS_URL}))
    gateway = TestClient(TestServer(app, host="127.0.0.1"))
    await gateway.start_server()
    consoles: list[Console] = []
    try:
        hid = await _open_handoff(gateway, fake_rasa, unique("racer"))
        consoles = [await _signed_in(gateway, settings) for _ in range(4)]
        results = await asyncio.gather(
            *(c.post(f"/console/api/handoffs/{hid}/claim") for c in consoles)
        )
        assert sorted(r.status for r in results) == [200, 409, 409, 409]
    finally:
        for c in consoles:
            await c.close()
        await gateway.close()


async def test_phone_numbers_are_masked_until_revealed_and_reveal_is_audited(
    gateway, fake_rasa, settings
) -> None:
    said = "我电话13812345678，身份证110101199003071234"
    hid = await _open_handoff(gateway, fake_rasa, "r4", said)
    agent = await _signed_in(gateway, settings)
    try:
        detail = await (await agent.get(f"/console/api/handoffs/{hid}")).json()
        first = detail["transcript"][0]
        assert first["text"] == "我电话138****5678，身份证110101********1234"
        assert first["masked"] is True
        queue = await (await agent.get("/console/api/handoffs")).json()
        assert "13812345678" not in str(queue)
        reveal = f"/console/api/messages/{first['id']}/reveal"
        assert (await agent.post(reveal)).status == 404  # not theirs until they claim it
        assert (await agent.post(f"/console/api/handoffs/{hid}/claim")).status == 200
        shown = await agent.post(reveal)
        assert (await shown.json())["text"] == said
    finally:
        await agent.close()
    assert f"reveal message:{first['id']}" in await _audit(settings.database_url)


async def test_script_from_a_citizen_stays_text_and_notes_stay_internal(
    gateway, fake_rasa, settings
) -> None:
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    evil = '<script>window.__xss=1</script><img src=x onerror="alert(1)">'
    hid = await _open_handoff(gateway, fake_rasa, "r5", evil)
    agent = await _signed_in(gateway, settings)
    try:
        await agent.post(f"/console/api/handoffs/{hid}/claim")
        noted = await agent.post(f"/console/api/handoffs/{hid}/note", {"text": "疑似重复来电"})
        assert (await noted.json())["message"]["internal"] is True
        raw = await (await agent.get(f"/console/api/handoffs/{hid}")).text()
        assert "&lt;script" not in raw  # JSON carries the characters; the page uses textContent
        detail = json.loads(raw)
        assert detail["transcript"][0]["text"] == evil
        notes = [m for m in detail["transcript"] if m["internal"]]
        assert [n["text"] for n in notes] == ["疑似重复来电"]
    finally:
        await agent.close()
    # The note never reached the citizen's channel nor their history.
    assert "疑似重复来电" not in channel.texts("r5")
    async with gateway.app[DB].session() as s:
        conv = await conversations.ensure_conversation(s, "rest", "r5")
        visible = [m.text for m in await conversations.history(s, conv.id)]
    assert "疑似重复来电" not in visible


async def test_close_resolves_and_tells_the_citizen(gateway, fake_rasa, settings) -> None:
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    hid = await _open_handoff(gateway, fake_rasa, "r6")
    agent = await _signed_in(gateway, settings)
    try:
        await agent.post(f"/console/api/handoffs/{hid}/claim")
        detail = await (await agent.get(f"/console/api/handoffs/{hid}")).json()
        me = (await (await agent.get("/console/api/me")).json())["agent"]
        greeting = next(c for c in detail["canned"] if c["key"] == "greeting")
        assert me["display_name"] in greeting["text"] and "{agent}" not in greeting["text"]
        closed = await agent.post(f"/console/api/handoffs/{hid}/close")
        assert (await closed.json())["handoff"]["state"] == "resolved"
        again = await agent.post(f"/console/api/handoffs/{hid}/close")
        assert again.status == 409
    finally:
        await agent.close()
    assert any("本次人工服务已结束" in t for t in channel.texts("r6"))


async def test_online_agent_gets_new_handoffs_automatically(gateway, fake_rasa, settings) -> None:
    gateway.app[SETTINGS].console_auto_assign = True
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    agent = await _signed_in(gateway, settings)
    try:
        ws = await agent.ws()  # connecting is a presence heartbeat
        await _open_handoff(gateway, fake_rasa, "r7")
        me = (await (await agent.get("/console/api/me")).json())["agent"]
        event = await next_event(
            ws, lambda e: e["type"] == "handoff" and e["handoff"]["state"] == "assigned"
        )
        assert event["handoff"]["agent"]["id"] == me["id"]
        await wait_until(lambda: any("已接入" in t for t in channel.texts("r7")))
        assert not any("第1位" in t for t in channel.texts("r7"))
    finally:
        await agent.close()


async def test_stale_handoff_expires_with_a_work_order_offer(gateway, fake_rasa, settings) -> None:
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    hid = await _open_handoff(gateway, fake_rasa, "r8")
    async with gateway.app[DB].session() as s:
        h = (await s.execute(select(Handoff).where(Handoff.public_id == hid))).scalar_one()
        h.created_at = utcnow() - timedelta(minutes=31)
    await Watcher(gateway.app).expire()
    async with gateway.app[DB].session() as s:
        h = (await s.execute(select(Handoff).where(Handoff.public_id == hid))).scalar_one()
        assert h.state == "expired"
    offer = [r for e, r in channel.sent if e == "r8" and "繁忙" in r.text]
    assert offer and offer[0].buttons[0].payload == "/leave_message"


async def test_agent_takes_over_a_bot_conversation(gateway, fake_rasa, settings) -> None:
    await gateway.post("/webhooks/rest/webhook", json={"sender": "r9", "message": "社保怎么交"})
    agent = await _signed_in(gateway, settings)
    try:
        live = await (await agent.get("/console/api/conversations")).json()
        conv = next(c for c in live["conversations"] if c["last_text"])
        taken = await agent.post(f"/console/api/conversations/{conv['conversation']}/claim")
        body = await taken.json()
        assert body["handoff"]["state"] == "assigned" and body["handoff"]["reason"] == "claimed"
        calls = len(fake_rasa.received)
        resp = await gateway.post("/webhooks/rest/webhook", json={"sender": "r9", "message": "喂"})
        assert await resp.json() == [] and len(fake_rasa.received) == calls
    finally:
        await agent.close()


async def test_messages_in_the_console_socket_are_masked(gateway, fake_rasa, settings) -> None:
    agent = await _signed_in(gateway, settings)
    try:
        ws = await agent.ws()
        await _open_handoff(gateway, fake_rasa, "r10", "电话 13912345678")
        event = await next_event(
            ws, lambda e: e["type"] == "message" and e["message"]["from"] == "citizen"
        )
        assert event["message"]["text"] == "电话 139****5678" and event["message"]["masked"]
    finally:
        await agent.close()


async def test_wrong_types_are_clear_errors(gateway, settings) -> None:
    boss = await _signed_in(gateway, settings, "supervisor")
    try:
        bad = await boss.post("/console/api/handoffs/x/reassign", {"agent_id": "7"})
        assert bad.status == 400
        assert (await boss.post("/console/api/messages/abc/reveal")).status == 404
        metrics = await (await boss.get("/console/api/metrics?hours=24")).json()
        assert metrics["count"] == 0
    finally:
        await boss.close()


async def test_message_rows_are_untouched_by_masking(gateway, fake_rasa, settings) -> None:
    await _open_handoff(gateway, fake_rasa, "r11", "13812345678")
    async with gateway.app[DB].session() as s:
        texts = [m.text for m in (await s.execute(select(Message))).scalars()]
    assert "13812345678" in texts


async def test_agent_files_a_work_order_for_the_citizen(gateway, fake_rasa, settings) -> None:
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    hid = await _open_handoff(gateway, fake_rasa, "r12", "幸福路路灯坏了")
    other = await _open_handoff(gateway, fake_rasa, "r13", "别的市民")
    agent = await _signed_in(gateway, settings)
    form = {
        "kind": "report",
        "description": "幸福路8号路灯不亮",
        "location": "幸福路8号",
        "contact_name": "王先生",
        "phone": "138 1234 5678",
    }
    try:
        await agent.post(f"/console/api/handoffs/{hid}/claim")
        created = await agent.post(f"/console/api/handoffs/{hid}/work-orders", form)
        assert created.status == 201
        tracking_no = (await created.json())["work_order"]["tracking_no"]
        again = await agent.post(f"/console/api/handoffs/{hid}/work-orders", form)
        assert (await again.json())["work_order"]["tracking_no"] == tracking_no  # one order
        bad = await agent.post(
            f"/console/api/handoffs/{hid}/work-orders", {**form, "phone": "12345"}
        )
        assert bad.status == 400 and "手机号码" in (await bad.json())["error"]

        detail = await (await agent.get(f"/console/api/handoffs/{hid}")).json()
        assert [o["tracking_no"] for o in detail["work_orders"]] == [tracking_no]
        order_status = next(c for c in detail["canned"] if c["key"] == "order_status")
        assert tracking_no in order_status["text"]

        path = f"/console/api/handoffs/{hid}/work-orders/{tracking_no}/note"
        assert (await agent.post(path, {"text": "市民补充：晚上8点后不亮"})).status == 200
        foreign = f"/console/api/handoffs/{other}/work-orders/{tracking_no}/note"
        assert (await agent.post(foreign, {"text": "x"})).status == 403  # not their hand-off
        await agent.post(f"/console/api/handoffs/{other}/claim")
        assert (await agent.post(foreign, {"text": "x"})).status == 404  # not that citizen's
    finally:
        await agent.close()
    assert any(tracking_no in t for t in channel.texts("r12"))


async def test_store_notice_marks_the_handoff_so_the_console_does_not_repeat_it(db) -> None:
    from store import assignment
    from store.bus import MemoryBus
    from store.client import StoreClient

    async with db.session() as s:
        conv = await conversations.ensure_conversation(s, "rest", "n1")
        public_id = conv.public_id
    ticket = await StoreClient(db, MemoryBus()).request_handoff(
        sender_id=public_id, reason="request_human", context={}
    )
    assert ticket.notice and ticket.buttons[0][1] == "/leave_message"
    async with db.session() as s:
        handoff = (await s.execute(select(Handoff))).scalar_one()
        assert assignment.was_noticed(handoff)


async def test_agent_sees_what_the_bot_understood_of_each_turn(gateway, fake_rasa, settings):
    """The intent and confidence of the citizen's last turns, read from Rasa's tracker when
    the agent opens the conversation (no extra Rasa call per message)."""
    for text in ("你好", "我家楼下路灯坏了好几天"):
        resp = await gateway.post("/webhooks/rest/webhook", json={"sender": "i1", "message": text})
        assert resp.status == 200
    tracker_calls_before = len(fake_rasa.received)
    hid = await _open_handoff(gateway, fake_rasa, "i1")
    agent = await _signed_in(gateway, settings)
    try:
        detail = await (await agent.get(f"/console/api/handoffs/{hid}")).json()
    finally:
        await agent.close()
    assert [(i["text"], i["intent"], i["confidence"]) for i in detail["intents"]] == [
        ("你好", "greet", 0.99),
        ("我家楼下路灯坏了好几天", "nlu_fallback", 0.42),
    ]
    # The turn Rasa never answered (it was down) has no invented intent.
    assert [m["intent"] for m in detail["transcript"] if m["from"] == "citizen"][-1] is None
    assert len(fake_rasa.received) == tracker_calls_before + 1  # only the failed turn
