"""The public REST channel keeps Rasa's shape and never loses what a citizen wrote."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Handoff, Message
from tests.conftest import database_of


async def test_rest_returns_rasa_shape_with_buttons(gateway, fake_rasa) -> None:
    resp = await gateway.post("/webhooks/rest/webhook", json={"sender": "u1", "message": "你好"})
    assert resp.status == 200
    body = await resp.json()
    assert body[0]["recipient_id"] == "u1"
    assert "12345" in body[0]["text"]
    assert {"title": "转人工", "payload": "/request_human"} in body[0]["buttons"]


async def test_traditional_characters_reach_rasa_simplified(gateway, fake_rasa) -> None:
    await gateway.post("/webhooks/rest/webhook", json={"sender": "u1", "message": "醫保報銷"})
    assert fake_rasa.received[-1]["message"] == "医保报销"


async def test_malformed_json_is_rejected_clearly(gateway) -> None:
    resp = await gateway.post(
        "/webhooks/rest/webhook", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "JSON" in (await resp.json())["error"]


async def test_oversized_body_is_refused(gateway) -> None:
    resp = await gateway.post(
        "/webhooks/rest/webhook", json={"sender": "u1", "message": "长" * 100_000}
    )
    assert resp.status == 413


async def test_rasa_down_apologises_stores_and_hands_off(gateway, fake_rasa, settings) -> None:
    fake_rasa.status = 500
    resp = await gateway.post(
        "/webhooks/rest/webhook", json={"sender": "u2", "message": "我家楼下路灯坏了<script>"}
    )
    body = await resp.json()
    assert "人工" in body[0]["text"]
    db = database_of(settings)
    async with db.session() as s:
        texts = [m.text for m in (await s.execute(select(Message))).scalars()]
        handoff = (await s.execute(select(Handoff))).scalar_one()
    await db.close()
    assert "我家楼下路灯坏了<script>" in texts
    assert handoff.state == "pending" and handoff.reason == "rasa_down"


async def test_rasa_timeout_answers_within_budget(gateway, fake_rasa) -> None:
    import time

    fake_rasa.delay = 5
    start = time.monotonic()
    resp = await gateway.post("/webhooks/rest/webhook", json={"sender": "u3", "message": "在吗"})
    assert resp.status == 200
    assert time.monotonic() - start < 5
    assert "抱歉" in (await resp.json())[0]["text"]


async def test_while_a_human_owns_the_chat_the_bot_is_silent(gateway, fake_rasa) -> None:
    fake_rasa.status = 500  # first message opens a hand-off
    await gateway.post("/webhooks/rest/webhook", json={"sender": "u4", "message": "喂"})
    fake_rasa.status = 200
    calls = len(fake_rasa.received)
    resp = await gateway.post("/webhooks/rest/webhook", json={"sender": "u4", "message": "还在吗"})
    assert await resp.json() == []
    assert len(fake_rasa.received) == calls
