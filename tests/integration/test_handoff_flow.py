"""End to end from a REST-channel citizen: the bot fails → hand-off → an agent claims in the
console → the reply reaches the citizen's channel → the citizen's next words go to the console,
not to Rasa → the agent returns the chat → Rasa answers again."""

from __future__ import annotations

import pytest

from bot.keys import CHANNELS
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
    """Agents claim by hand here; service is open around the clock."""
    return claim_by_hand(settings)


async def _say(gateway, sender: str, text: str) -> list[dict]:
    resp = await gateway.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert resp.status == 200
    return await resp.json()


async def test_rest_citizen_agent_round_trip(gateway, fake_rasa, settings) -> None:
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        assert (await console.login(name)).status == 200
        ws = await console.ws()

        # The bot is down: the citizen is apologised to and a hand-off opens.
        fake_rasa.status = 500
        first = await _say(gateway, "citizen-1", "我要找人工 <script>alert(1)</script>")
        assert "人工" in first[0]["text"]

        # It appears in the console without a reload, with the citizen's words as text.
        opened = await next_event(ws, lambda e: e["type"] == "handoff" and e["change"] == "opened")
        handoff = opened["handoff"]
        assert handoff["state"] == "pending" and handoff["channel"] == "rest"
        assert handoff["last_text"] == "我要找人工 <script>alert(1)</script>"
        queue = await (await console.get("/console/api/handoffs")).json()
        assert [h["id"] for h in queue["handoffs"]] == [handoff["id"]]
        assert queue["handoffs"][0]["position"] == 1

        # The citizen was told their place and the estimate (one agent online, 3 min default).
        await wait_until(lambda: any("第1位" in t for t in channel.texts("citizen-1")))
        assert any("约3分钟" in t for t in channel.texts("citizen-1"))

        # The agent claims and replies; the reply reaches the citizen's channel.
        hid = handoff["id"]
        claimed = await console.post(f"/console/api/handoffs/{hid}/claim")
        assert claimed.status == 200
        assert (await claimed.json())["handoff"]["state"] == "assigned"
        reply = await console.post(f"/console/api/handoffs/{hid}/reply", {"text": "您好，我来帮您"})
        assert (await reply.json())["delivered"] is True
        assert "您好，我来帮您" in channel.texts("citizen-1")
        assert any("已接入" in t for t in channel.texts("citizen-1"))

        # While the agent owns the chat the citizen's words go to the console, not to Rasa.
        fake_rasa.status = 200
        calls = len(fake_rasa.received)
        assert await _say(gateway, "citizen-1", "我家地址是幸福路8号") == []
        live = await next_event(
            ws, lambda e: e["type"] == "message" and e["message"]["from"] == "citizen"
        )
        assert live["message"]["text"] == "我家地址是幸福路8号"
        assert live["conversation"] == handoff["conversation"]
        assert len(fake_rasa.received) == calls

        # Back to the bot: the citizen is told, and Rasa answers the next question.
        back = await console.post(f"/console/api/handoffs/{hid}/return")
        assert (await back.json())["handoff"]["state"] == "returned_to_bot"
        assert any("智能助手继续为您服务" in t for t in channel.texts("citizen-1"))
        answer = await _say(gateway, "citizen-1", "你好")
        assert "12345智能助手" in answer[0]["text"]
        assert fake_rasa.received[-1]["message"] == "你好"

        # The agent no longer owns the chat; a supervisor reads the whole transcript: every
        # turn, in order, as plain text.
        assert (await console.get(f"/console/api/handoffs/{hid}")).status == 403
        boss_name = unique("boss")
        await make_agent(settings.database_url, boss_name, "supervisor")
        boss = Console(gateway)
        assert (await boss.login(boss_name)).status == 200
        detail = await (await boss.get(f"/console/api/handoffs/{hid}")).json()
        await boss.close()
        speakers = [m["from"] for m in detail["transcript"]]
        assert speakers[0] == "citizen" and "agent" in speakers and "system" in speakers
        assert detail["transcript"][0]["text"] == "我要找人工 <script>alert(1)</script>"
        assert detail["metrics"]["outcome"] == "returned_to_bot"
        assert detail["metrics"]["wait"] is not None and detail["metrics"]["handling"] is not None
    finally:
        await console.close()
