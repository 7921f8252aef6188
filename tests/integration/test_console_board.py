"""The supervisor board: open work orders with deadlines, 督办 and delay reasons, and analytics
computed from recorded timestamps (hand-offs per day, median time to hand-off / wait / handling,
outcomes, satisfaction rate) — with known timestamps, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.keys import CIPHER, DB
from store import assignment, conversations, work_orders
from store.models import Handoff, HandoffEvent, Message, Rating, utcnow
from tests.integration.test_console_helpers import Console, make_agent, unique

TZ = ZoneInfo("Asia/Shanghai")  # the settings' default TIMEZONE


async def _signed_in(gateway, settings, role: str) -> Console:
    name = unique(role)
    await make_agent(settings.database_url, name, role)
    console = Console(gateway)
    assert (await console.login(name)).status == 200
    return console


async def _recorded_handoff(
    s,
    sender: str,
    opened: datetime,
    *,
    turns: list[timedelta],
    assigned: timedelta | None,
    ended: tuple[str, timedelta],
) -> Handoff:
    """A finished hand-off as the store records it: citizen turns (offsets before opening),
    then pending → (assigned →) end, each event at a known time."""
    conv = await conversations.ensure_conversation(s, "rest", sender)
    for i, before in enumerate(turns):
        s.add(
            Message(
                conversation_id=conv.id,
                sender="citizen",
                text=f"第{i}句",
                created_at=opened - before,
            )
        )
    end_state, end_after = ended
    h = Handoff(
        conversation_id=conv.id,
        state=end_state,
        reason="request_human",
        created_at=opened,
        assigned_at=opened + assigned if assigned is not None else None,
        ended_at=opened + end_after,
    )
    s.add(h)
    await s.flush()
    steps = [(None, "pending", opened)]
    if assigned is not None:
        steps.append(("pending", "assigned", opened + assigned))
    steps.append((steps[-1][1], end_state, opened + end_after))
    for from_state, to_state, at in steps:
        s.add(
            HandoffEvent(
                handoff_id=h.id, from_state=from_state, to_state=to_state, actor="t", created_at=at
            )
        )
    await s.flush()
    return h


async def _rated_order(s, cipher, sender: str, score: str, at: datetime) -> None:
    conv = await conversations.ensure_conversation(s, "rest", sender)
    order = await work_orders.create_work_order(
        s,
        cipher,
        conversation=conv,
        kind="report",
        category_code=None,
        description="路灯坏了",
        location=None,
        contact_name=None,
        phone="13812345678",
        actor="bot",
        idempotency_key=None,
    )
    s.add(Rating(work_order_id=order.id, score=score, created_at=at))


async def test_analytics_from_known_timestamps(gateway, settings) -> None:
    today = utcnow().astimezone(TZ).date()
    noon = {
        d: datetime.combine(today - timedelta(days=d), time(12), tzinfo=TZ).astimezone(UTC)
        for d in (2, 1)
    }
    m = timedelta(minutes=1)
    async with gateway.app[DB].session() as s:
        # Two days ago: a turn 50 min before (another visit) and one 3 min before; waited 1 min,
        # handled 5 min, resolved.
        a = await _recorded_handoff(
            s, "a", noon[2], turns=[50 * m, 3 * m], assigned=m, ended=("resolved", 6 * m)
        )
        # Yesterday: turn 1 min before; waited 2 min, handled 100 s, back to the bot.
        await _recorded_handoff(
            s,
            "b",
            noon[1],
            turns=[m],
            assigned=2 * m,
            ended=("returned_to_bot", 2 * m + timedelta(seconds=100)),
        )
        # Yesterday 13:00: turn 10 min before; nobody came within 30 min.
        await _recorded_handoff(
            s, "c", noon[1] + 60 * m, turns=[10 * m], assigned=None, ended=("expired", 30 * m)
        )
        # Outside the 7-day window: not counted.
        await _recorded_handoff(
            s, "d", noon[2] - timedelta(days=10), turns=[m], assigned=m, ended=("resolved", 2 * m)
        )
        cipher = gateway.app[CIPHER]
        for i, score in enumerate(("satisfied", "basically_satisfied", "unsatisfied")):
            await _rated_order(s, cipher, f"r{i}", score, utcnow() - timedelta(hours=1))
        await _rated_order(s, cipher, "old", "unsatisfied", utcnow() - timedelta(days=30))
        a_id = a.id

    async with gateway.app[DB].session() as s:
        one = await assignment.metrics(s, await s.get_one(Handoff, a_id))
    assert (one.time_to_handoff, one.wait, one.handling, one.outcome) == (
        180.0,
        60.0,
        300.0,
        "resolved",
    )

    boss = await _signed_in(gateway, settings, "supervisor")
    agent = await _signed_in(gateway, settings, "agent")
    try:
        assert (await agent.get("/console/api/analytics")).status == 403
        assert (await boss.get("/console/api/analytics?days=0")).status == 400
        assert (await boss.get("/console/api/analytics?days=x")).status == 400
        data = await (await boss.get("/console/api/analytics?days=7")).json()
    finally:
        await boss.close()
        await agent.close()
    h = data["handoffs"]
    assert h["count"] == 3
    per_day = {d["day"]: d["handoffs"] for d in h["per_day"]}
    assert len(per_day) == 7 and sum(per_day.values()) == 3
    assert per_day[(today - timedelta(days=2)).isoformat()] == 1
    assert per_day[(today - timedelta(days=1)).isoformat()] == 2
    assert per_day[today.isoformat()] == 0
    assert h["outcomes"] == {"resolved": 1, "returned_to_bot": 1, "expired": 1}
    assert h["median_time_to_handoff"] == 180.0  # of 180, 60, 600
    assert h["median_wait"] == 120.0  # of 60, 120, 1800
    assert h["median_handling"] == 200.0  # of 300, 100 (the expired one was never handled)
    r = data["ratings"]
    assert r["count"] == 3 and r["scores"]["unsatisfied"] == 1
    assert r["satisfaction_rate"] == 0.667  # (满意 + 基本满意) / all
    assert data["work_orders"]["filed"] == 4  # the rated orders were all filed just now


async def test_board_lists_open_orders_with_deadlines_supervision_and_delay(
    gateway, settings
) -> None:
    cipher = gateway.app[CIPHER]
    async with gateway.app[DB].session() as s:
        conv = await conversations.ensure_conversation(s, "rest", "board")
        common = dict(
            cipher=cipher,
            conversation=conv,
            kind="complain",
            category_code=None,
            location=None,
            contact_name="李四",
            phone="13912345678",
            actor="bot",
            idempotency_key=None,
        )
        late = await work_orders.create_work_order(s, description="噪音扰民 13912345678", **common)
        fresh = await work_orders.create_work_order(s, description="井盖缺失", **common)
        late.response_due = utcnow() - timedelta(days=3)
        late.result_due = utcnow() - timedelta(days=1)
        await s.flush()
        assert await work_orders.flag_overdue(s) == [late.tracking_no]
        await work_orders.set_delay_reason(s, late, "需多部门联合执法", "agent:boss")
        late_no, fresh_no = late.tracking_no, fresh.tracking_no
    boss = await _signed_in(gateway, settings, "supervisor")
    agent = await _signed_in(gateway, settings, "agent")
    try:
        assert (await agent.get("/console/api/work-orders")).status == 403
        board = await (await boss.get("/console/api/work-orders")).json()
        overdue = await (await boss.get("/console/api/work-orders?overdue=1")).json()
    finally:
        await boss.close()
        await agent.close()
    numbers = [o["tracking_no"] for o in board["work_orders"]]
    assert numbers == [late_no, fresh_no]  # 督办 first
    first, second = board["work_orders"]
    assert first["supervision"] and first["result_overdue"] and first["response_overdue"]
    assert first["delay_reason"] == "需多部门联合执法"
    assert first["description"] == "噪音扰民 139****5678" and first["contact_name"] == "李*"
    assert first["result_due"] and first["response_due"]
    assert not (second["supervision"] or second["result_overdue"] or second["response_overdue"])
    assert [n["status"] for n in first["next"]] == ["dispatched"] and first["can_delay"]
    assert [o["tracking_no"] for o in overdue["work_orders"]] == [late_no]
