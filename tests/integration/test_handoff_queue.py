"""Hand-off state machine, queue place and estimate, off-hours offer, auto-assign, expiry,
metrics — against the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.console.notice import handoff_notice
from bot.service_hours import ServiceHours, ServiceHoursError
from bot.settings import Settings
from store import agents, assignment, conversations, handoffs
from store.models import Handoff, HandoffEvent, Outbox, utcnow

# 2026-11-18 is a Wednesday, 2026-11-22 a Sunday (Asia/Shanghai = UTC+8).
WED_10AM = datetime(2026, 11, 18, 2, 0, tzinfo=UTC)
SUN_10AM = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
WED_8PM = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def _settings(hours: str = "mon-sun 00:00-24:00") -> Settings:
    return Settings(_env_file=None, service_hours=hours, timezone="Asia/Shanghai")


async def _conversation(db, external_id: str):
    async with db.session() as s:
        return await conversations.ensure_conversation(s, "rest", external_id)


async def _open(db, external_id: str, reason: str = "request_human") -> Handoff:
    conv = await _conversation(db, external_id)
    async with db.session() as s:
        return await handoffs.request(s, conv, reason, {"slots": {"phone": "13812345678"}})


async def test_state_machine_allows_only_its_transitions(db) -> None:
    h = await _open(db, "c1")
    async with db.session() as s:
        h = await s.get_one(Handoff, h.id)
        with pytest.raises(handoffs.InvalidHandoffTransition):
            await handoffs.transition(s, h, "resolved", "test")
        await handoffs.transition(s, h, "assigned", "test", agent_id=None)
        await handoffs.transition(s, h, "returned_to_bot", "test")
        for to in ("assigned", "pending", "resolved", "expired"):
            with pytest.raises(handoffs.InvalidHandoffTransition):
                await handoffs.transition(s, h, to, "test")
    async with db.session() as s:
        events = [
            (e.from_state, e.to_state) for e in (await s.execute(select(HandoffEvent))).scalars()
        ]
        topics = [o.topic for o in (await s.execute(select(Outbox))).scalars()]
    assert events == [(None, "pending"), ("pending", "assigned"), ("assigned", "returned_to_bot")]
    assert topics == ["handoff.changed"] * 3


async def test_at_most_one_open_handoff_per_conversation(db) -> None:
    first = await _open(db, "c2")
    again = await _open(db, "c2", reason="fallback")
    assert again.id == first.id
    async with db.session() as s:
        await handoffs.transition(s, await s.get_one(Handoff, first.id), "expired", "test")
    later = await _open(db, "c2")
    assert later.id != first.id and later.state == "pending"


async def test_queue_place_and_estimate_default_three_minutes(db) -> None:
    opened = [await _open(db, f"q{i}") for i in range(3)]
    async with db.session() as s:
        aid = (await agents.create_agent(s, "qa_agent", "long enough 123")).id
        await agents.touch(s, aid, WED_10AM)
    async with db.session() as s:
        places = [await assignment.estimate_wait(s, h) for h in opened]
        reply = await handoff_notice(s, opened[1], WED_10AM, settings=_settings())
    assert [p for p, _ in places] == [1, 2, 3]
    assert [w for _, w in places] == [timedelta(minutes=m) for m in (3, 6, 9)]
    assert "第2位" in reply.text and "约6分钟" in reply.text


async def test_estimate_follows_measured_handling_time(db) -> None:
    done = await _open(db, "done")
    async with db.session() as s:
        h = await s.get_one(Handoff, done.id)
        await handoffs.transition(s, h, "assigned", "test")
        h.assigned_at = utcnow() - timedelta(minutes=10)
        await handoffs.transition(s, h, "resolved", "test")
    waiting = await _open(db, "waiting")
    async with db.session() as s:
        position, wait = await assignment.estimate_wait(s, waiting)
    assert position == 1 and timedelta(minutes=9) < wait < timedelta(minutes=11)


async def test_outside_service_hours_the_citizen_is_offered_a_work_order(db) -> None:
    h = await _open(db, "late")
    async with db.session() as s:
        aid = (await agents.create_agent(s, "night", "long enough 123")).id
        await agents.touch(s, aid, SUN_10AM)
        reply = await handoff_notice(s, h, SUN_10AM, settings=_settings("mon-fri 08:30-17:30"))
    assert "非人工服务时间" in reply.text and "11月23日 08:30" in reply.text
    assert [(b.title, b.payload) for b in reply.buttons] == [
        ("留言登记工单", "/leave_message"),
        ("继续等待", "继续等待"),
    ]


async def test_no_agent_online_offers_a_work_order(db) -> None:
    h = await _open(db, "alone")
    async with db.session() as s:
        await agents.create_agent(s, "away", "long enough 123")  # never seen: offline
        reply = await handoff_notice(s, h, WED_10AM, settings=_settings())
    assert "暂无在线" in reply.text
    assert reply.buttons[0].payload == "/leave_message"


async def test_auto_assign_picks_the_least_loaded_online_agent(db) -> None:
    now = utcnow()
    async with db.session() as s:
        busy = await agents.create_agent(s, "busy", "long enough 123")
        free = await agents.create_agent(s, "free", "long enough 123")
        gone = await agents.create_agent(s, "gone", "long enough 123")
        await agents.touch(s, busy.id, now)
        await agents.touch(s, free.id, now - timedelta(seconds=30))
        await agents.touch(s, gone.id, now - timedelta(seconds=61))  # presence timed out
    for i in range(2):
        h = await _open(db, f"busy{i}")
        async with db.session() as s:
            await handoffs.transition(
                s, await s.get_one(Handoff, h.id), "assigned", "t", agent_id=busy.id
            )
    new = await _open(db, "new")
    async with db.session() as s:
        assigned = await assignment.auto_assign(s, now)
    assert [h.id for h in assigned] == [new.id]
    assert assigned[0].agent_id == free.id


async def test_auto_assign_waits_when_nobody_is_online(db) -> None:
    await _open(db, "nobody")
    async with db.session() as s:
        await agents.create_agent(s, "offline", "long enough 123")
        assert await assignment.auto_assign(s) == []
        assert len(await handoffs.queue(s)) == 1


async def test_stale_pending_handoffs_expire(db) -> None:
    old, fresh = await _open(db, "old"), await _open(db, "fresh")
    async with db.session() as s:
        (await s.get_one(Handoff, old.id)).created_at = utcnow() - timedelta(minutes=31)
    async with db.session() as s:
        expired = await assignment.expire_stale(s, timedelta(minutes=30))
    assert [h.id for h in expired] == [old.id]
    async with db.session() as s:
        assert (await s.get_one(Handoff, old.id)).state == "expired"
        assert (await s.get_one(Handoff, fresh.id)).state == "pending"


async def test_metrics_time_to_handoff_wait_handling_outcome(db) -> None:
    conv = await _conversation(db, "metrics")
    t0 = utcnow() - timedelta(minutes=20)
    async with db.session() as s:
        m = await conversations.store_inbound(s, conv, "你好", "m1")
        m.created_at = t0
    async with db.session() as s:
        h = await handoffs.request(s, conv, "request_human")
    async with db.session() as s:
        h = await s.get_one(Handoff, h.id)
        await handoffs.transition(s, h, "assigned", "t")
        await handoffs.transition(s, h, "resolved", "t")
    async with db.session() as s:
        events = list((await s.execute(select(HandoffEvent).order_by(HandoffEvent.id))).scalars())
        events[0].created_at = t0 + timedelta(minutes=2)  # opened
        events[1].created_at = t0 + timedelta(minutes=5)  # assigned
        events[2].created_at = t0 + timedelta(minutes=12)  # resolved
    async with db.session() as s:
        got = await assignment.metrics(s, await s.get_one(Handoff, h.id))
    assert (got.time_to_handoff, got.wait, got.handling, got.outcome) == (
        120.0,
        180.0,
        420.0,
        "resolved",
    )


def test_service_hours_parse_and_next_opening() -> None:
    hours = ServiceHours.parse("mon-fri 08:30-12:00, 13:30-17:30; sat-sun 09:00-17:00")
    assert hours.in_service(WED_10AM)
    assert not hours.in_service(WED_8PM)
    assert not hours.in_service(datetime(2026, 11, 18, 4, 30, tzinfo=UTC))  # 12:30 lunch
    opening = hours.next_opening(WED_8PM)
    assert (opening.day, opening.hour, opening.minute) == (19, 8, 30)
    assert ServiceHours.parse("24/7").in_service(WED_8PM)
    assert ServiceHours.parse("").next_opening(WED_8PM) is None
    with pytest.raises(ServiceHoursError):
        ServiceHours.parse("mon-fri 17:00-08:00")
    with pytest.raises(ServiceHoursError):
        ServiceHours.parse("someday 08:00-09:00")


async def test_leaving_a_message_returns_only_a_pending_handoff_to_the_bot(db) -> None:
    waiting, taken = await _open(db, "lm1"), await _open(db, "lm2")
    async with db.session() as s:
        await handoffs.transition(s, await s.get_one(Handoff, taken.id), "assigned", "t")
    async with db.session() as s:
        assert await assignment.leave_message_instead(s, await s.get_one(Handoff, waiting.id))
        assert not await assignment.leave_message_instead(s, await s.get_one(Handoff, taken.id))
    async with db.session() as s:
        assert (await s.get_one(Handoff, waiting.id)).state == "returned_to_bot"
        assert (await s.get_one(Handoff, taken.id)).state == "assigned"
