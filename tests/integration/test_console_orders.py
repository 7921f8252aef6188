"""Work orders from the console: status steps along the 12345 loop (the citizen is told), notes,
delay reasons, masked contact data with an audited reveal, and the hand-off context's reveal.
Refusals change nothing: no CSRF, wrong role, a step the lifecycle does not allow."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.keys import CHANNELS, CIPHER, DB
from store import conversations, handoffs
from store.categories import seed_taxonomy
from store.handoff_context import seal, unseal
from store.models import AuditLog, Handoff, Outbox, WorkOrder, WorkOrderEvent
from tests.integration.test_console_helpers import (
    Console,
    RecordingChannel,
    make_agent,
    unique,
    wait_until,
)

FORM = {
    "kind": "report",
    "description": "幸福路8号路灯不亮，联系电话13812345678",
    "location": "幸福路8号",
    "contact_name": "王小明",
    "phone": "13812345678",
}


@pytest.fixture
def settings(settings):
    """Claims by hand; open around the clock."""
    return settings.model_copy(
        update={"console_auto_assign": False, "service_hours": "mon-sun 00:00-24:00"}
    )


async def _signed_in(gateway, settings, role: str = "agent") -> Console:
    name = unique(role)
    await make_agent(settings.database_url, name, role)
    console = Console(gateway)
    assert (await console.login(name)).status == 200
    return console


async def _open_handoff(gateway, fake_rasa, sender: str, text: str = "转人工") -> str:
    fake_rasa.status = 500
    await gateway.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    fake_rasa.status = 200
    async with gateway.app[DB].session() as s:
        conv = await conversations.ensure_conversation(s, "rest", sender)
        return (await handoffs.open_for(s, conv.id)).public_id


async def _filed(gateway, fake_rasa, agent: Console, sender: str) -> tuple[str, str]:
    """A citizen's hand-off claimed by `agent`, who files a work order: (hand-off, number)."""
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
    hid = await _open_handoff(gateway, fake_rasa, sender)
    assert (await agent.post(f"/console/api/handoffs/{hid}/claim")).status == 200
    created = await agent.post(f"/console/api/handoffs/{hid}/work-orders", FORM)
    assert created.status == 201
    return hid, (await created.json())["work_order"]["tracking_no"]


async def _order_in_detail(console: Console, hid: str, number: str) -> dict:
    detail = await (await console.get(f"/console/api/handoffs/{hid}")).json()
    return next(o for o in detail["work_orders"] if o["tracking_no"] == number)


async def _state(gateway, number: str) -> tuple[str, int, int, int]:
    """(status, events, outbox rows about it, audit rows about it) as stored."""
    async with gateway.app[DB].session() as s:
        order = (
            await s.execute(select(WorkOrder).where(WorkOrder.tracking_no == number))
        ).scalar_one()
        events = await s.scalar(
            select(func.count(WorkOrderEvent.id)).where(WorkOrderEvent.work_order_id == order.id)
        )
        pushes = [
            o
            for o in (await s.execute(select(Outbox).where(Outbox.topic == "work_order.status")))
            .scalars()
            .all()
            if o.payload["tracking_no"] == number
        ]
        audits = await s.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.target.like(f"work_order:{number}%"))
        )
    return order.status, events, len(pushes), audits


async def _audit(gateway) -> list[str]:
    async with gateway.app[DB].session() as s:
        return [f"{a.action} {a.target}" for a in (await s.execute(select(AuditLog))).scalars()]


async def test_supervisor_dispatches_agent_records_progress_and_the_citizen_is_told(
    gateway, fake_rasa, settings
) -> None:
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    agent = await _signed_in(gateway, settings)
    boss = await _signed_in(gateway, settings, "supervisor")
    try:
        hid, number = await _filed(gateway, fake_rasa, agent, "wo1")
        mine = await _order_in_detail(agent, hid, number)
        assert mine["status"] == "received" and mine["next"] == []  # 派单 is the supervisor's
        assert mine["can_note"] and not mine["can_delay"]
        theirs = await _order_in_detail(boss, hid, number)
        assert [n["status"] for n in theirs["next"]] == ["dispatched"] and theirs["can_delay"]

        sent = await boss.post(
            f"/console/api/work-orders/{number}/status",
            {"to": "dispatched", "department_code": "urban_mgmt", "note": "请核实路灯"},
        )
        assert sent.status == 200
        body = (await sent.json())["work_order"]
        assert body["status"] == "dispatched" and body["department"] == "市城管局"
        await wait_until(lambda: any("已派至市城管局" in t for t in channel.texts("wo1")))

        mine = await _order_in_detail(agent, hid, number)
        assert mine["next"] == [{"status": "in_progress", "label": "开始办理"}]
        moved = await agent.post(
            f"/console/api/work-orders/{number}/status",
            {"to": "in_progress", "note": "城管已到现场"},
        )
        assert moved.status == 200
        body = (await moved.json())["work_order"]
        assert body["status"] == "in_progress" and body["status_label"] == "办理中"
        assert body["timeline"][-1]["note"] == "城管已到现场"
        await wait_until(lambda: any(f"{number} 正在办理中" in t for t in channel.texts("wo1")))
    finally:
        await agent.close()
        await boss.close()
    status, events, pushes, audits = await _state(gateway, number)
    assert (status, events, pushes, audits) == ("in_progress", 3, 2, 2)
    trail = await _audit(gateway)
    assert f"work_order_status work_order:{number}:received->dispatched" in trail
    assert f"work_order_status work_order:{number}:dispatched->in_progress" in trail


async def test_refused_steps_change_nothing(gateway, fake_rasa, settings) -> None:
    agent = await _signed_in(gateway, settings)
    other = await _signed_in(gateway, settings)
    boss = await _signed_in(gateway, settings, "supervisor")
    path = ""
    try:
        _, number = await _filed(gateway, fake_rasa, agent, "wo2")
        path = f"/console/api/work-orders/{number}/status"
        before = await _state(gateway, number)

        no_csrf = await boss.post(path, {"to": "dispatched"}, csrf=False)
        assert no_csrf.status == 403 and "CSRF" in (await no_csrf.json())["error"]
        role = await agent.post(path, {"to": "dispatched", "department_code": "urban_mgmt"})
        assert role.status == 403 and "班长" in (await role.json())["error"]
        stranger = await other.post(path, {"to": "in_progress"})
        assert stranger.status == 404  # not a citizen this agent serves
        invalid = await boss.post(path, {"to": "resolved", "note": "已修好"})
        assert invalid.status == 409
        assert "已受理" in (await invalid.json())["error"]  # says where the order stands
        too_early = await agent.post(path, {"to": "in_progress"})
        assert too_early.status == 409
        by_rating_only = await boss.post(path, {"to": "closed"})
        assert by_rating_only.status == 400
        assert (await boss.post(path, {"to": "nonsense"})).status == 400
        unknown = await boss.post("/console/api/work-orders/12345-20260101-XXXXXXXXX/status", {})
        assert unknown.status == 404

        assert await _state(gateway, number) == before

        # Dispatch needs a department (none from an unknown category); 办结 needs a result.
        nowhere = await boss.post(path, {"to": "dispatched"})
        assert nowhere.status == 400 and "承办单位" in (await nowhere.json())["error"]
        assert (await boss.post(path, {"to": "dispatched", "department_code": "x"})).status == 400
        ok = await boss.post(path, {"to": "dispatched", "department_code": "urban_mgmt"})
        assert ok.status == 200
        await boss.post(path, {"to": "in_progress"})
        silent = await boss.post(path, {"to": "resolved"})
        assert silent.status == 400 and "办理结果" in (await silent.json())["error"]
    finally:
        for c in (agent, other, boss):
            await c.close()
    assert (await _state(gateway, number))[0] == "in_progress"


async def test_delay_reason_is_for_supervisors_and_reaches_the_citizen_and_lookup(
    gateway, fake_rasa, settings
) -> None:
    channel = RecordingChannel("rest")
    gateway.app[CHANNELS].register(channel)
    agent = await _signed_in(gateway, settings)
    boss = await _signed_in(gateway, settings, "supervisor")
    try:
        _, number = await _filed(gateway, fake_rasa, agent, "wo3")
        path = f"/console/api/work-orders/{number}/delay"
        refused = await agent.post(path, {"reason": "需协调供电部门"})
        assert refused.status == 403
        assert (await boss.post(path, {"reason": "需协调供电部门"}, csrf=False)).status == 403
        assert (await boss.post(path, {"reason": "  "})).status == 400
        done = await boss.post(path, {"reason": "需协调供电部门现场勘查"})
        assert done.status == 200
        assert (await done.json())["work_order"]["delay_reason"] == "需协调供电部门现场勘查"
        await wait_until(lambda: any("需要延期办理" in t for t in channel.texts("wo3")))
        assert any("原因：需协调供电部门现场勘查" in t for t in channel.texts("wo3"))
    finally:
        await agent.close()
        await boss.close()
    async with gateway.app[DB].session() as s:
        payloads = [str(p) for p in (await s.execute(select(Outbox.payload))).scalars()]
    assert payloads and not any("需协调" in p for p in payloads)  # the notice's note is sealed
    looked = await gateway.get(f"/api/v1/work-orders/{number}?phone_last4=5678")
    assert (await looked.json())["delay_reason"] == "需协调供电部门现场勘查"
    assert f"work_order_delay work_order:{number}" in await _audit(gateway)


async def test_contact_data_is_masked_until_revealed_and_notes_are_audited(
    gateway, fake_rasa, settings
) -> None:
    agent = await _signed_in(gateway, settings)
    other = await _signed_in(gateway, settings)
    try:
        hid, number = await _filed(gateway, fake_rasa, agent, "wo4")
        shown = await _order_in_detail(agent, hid, number)
        assert shown["phone"] == "138****5678" and shown["contact_name"] == "王**"
        assert shown["description"] == "幸福路8号路灯不亮，联系电话138****5678"
        assert shown["masked"] and shown["can_reveal"] and "13812345678" not in str(shown)
        assert (await other.get(f"/console/api/handoffs/{hid}")).status == 403  # not theirs

        assert (
            await agent.post(f"/console/api/work-orders/{number}/reveal", csrf=False)
        ).status == 403
        assert (await other.post(f"/console/api/work-orders/{number}/reveal")).status == 404
        revealed = await (await agent.post(f"/console/api/work-orders/{number}/reveal")).json()
        assert revealed["phone"] == "13812345678" and revealed["contact_name"] == "王小明"
        assert revealed["description"] == FORM["description"]

        noted = await agent.post(
            f"/console/api/work-orders/{number}/note",
            {"text": "<b>市民补充</b>：晚上8点后不亮"},
        )
        assert noted.status == 200
        last = (await noted.json())["work_order"]["timeline"][-1]
        assert last["note"] == "<b>市民补充</b>：晚上8点后不亮" and last["label"] == "补充说明"
        assert (
            await agent.post(f"/console/api/work-orders/{number}/note", {"text": ""})
        ).status == 400
        assert (
            await other.post(f"/console/api/work-orders/{number}/note", {"text": "x"})
        ).status == 404
    finally:
        await agent.close()
        await other.close()
    trail = await _audit(gateway)
    assert f"reveal work_order:{number}" in trail
    assert f"work_order_note work_order:{number}" in trail


async def test_handoff_context_is_masked_and_each_entry_revealable_with_audit(
    gateway, settings
) -> None:
    context = {
        "slots": {
            "phone": "13812345678",
            "contact_name": "王小明",
            "description": "身份证110101199003071234，路灯坏了",
            "location": "幸福路8号",
        },
        "last_intents": ["request_human"],
        "last_text_id": 7,
        "_notice_sent": True,
    }
    async with gateway.app[DB].session() as s:
        conv = await conversations.ensure_conversation(s, "rest", "ctx1")
        # as the action server's store client does
        sealed = seal(context, gateway.app[CIPHER], conv.id)
        hid = (await handoffs.request(s, conv, "request_human", sealed)).public_id
    agent = await _signed_in(gateway, settings)
    try:
        detail = await (await agent.get(f"/console/api/handoffs/{hid}")).json()
        slots = detail["context"]["slots"]
        assert slots["phone"] == "138****5678" and slots["contact_name"] == "王**"
        assert slots["description"] == "身份证110101********1234，路灯坏了"
        assert slots["location"] == "幸福路8号"
        assert "last_text_id" not in detail["context"] and "_notice_sent" not in detail["context"]
        assert sorted(detail["context_masked"]) == [
            ["slots", "contact_name"],
            ["slots", "description"],
            ["slots", "phone"],
        ]

        path = f"/console/api/handoffs/{hid}/context/reveal"
        assert (await agent.post(path, {"path": ["slots", "phone"]})).status == 403  # unclaimed
        assert (await agent.post(f"/console/api/handoffs/{hid}/claim")).status == 200
        assert (await agent.post(path, {"path": ["slots", "phone"]}, csrf=False)).status == 403
        shown = await agent.post(path, {"path": ["slots", "phone"]})
        assert (await shown.json())["value"] == "13812345678"
        for hidden in (["_notice_sent"], ["last_text_id"], ["slots"], ["nope"], "slots"):
            assert (await agent.post(path, {"path": hidden})).status in (400, 404)
    finally:
        await agent.close()
    trail = await _audit(gateway)
    assert f"reveal context:{hid}:slots.phone" in trail
    assert sum(t.startswith("reveal context:") for t in trail) == 1
    async with gateway.app[DB].session() as s:
        stored = (await s.execute(select(Handoff).where(Handoff.public_id == hid))).scalar_one()
        assert "13812345678" not in str(stored.context)  # encrypted at rest
        opened = unseal(stored.context, gateway.app[CIPHER], stored.conversation_id)
        assert opened["slots"]["phone"] == "13812345678"  # masking is for display only
        # Bound to its conversation: copied into another hand-off it opens to nothing.
        assert "slots" not in unseal(
            stored.context, gateway.app[CIPHER], stored.conversation_id + 1
        )
