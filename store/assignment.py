"""Who takes a hand-off: claim, auto-assign to the least-loaded online agent, reassign, expire,
and the hand-off metrics kept for analytics (time to hand-off, wait, handling time, outcome)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import agents, handoffs
from store.errors import HandoffTaken, InvalidTransition
from store.models import Agent, Handoff, HandoffEvent, Message, utcnow
from store.service_hours import ServiceHours

DEFAULT_HANDLING = timedelta(minutes=3)
MAX_AUTO_LOAD = 5  # auto-assign never gives an agent more open chats than this
VISIT_GAP = timedelta(minutes=30)  # citizen turns further apart belong to different visits
VISIT_LOOKBACK = timedelta(hours=24)  # time to hand-off looks back at most this far


async def load(
    session: AsyncSession, public_id: str, *, for_update: bool = False
) -> Handoff | None:
    """A hand-off by public id; `for_update` locks the row on PostgreSQL."""
    stmt = select(Handoff).where(Handoff.public_id == public_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim(session: AsyncSession, handoff: Handoff, agent: Agent) -> Handoff:
    """An agent takes a pending hand-off; idempotent for the agent who already has it."""
    if handoff.state == "assigned" and handoff.agent_id == agent.id:
        return handoff
    if handoff.state != "pending":
        raise HandoffTaken(handoff.public_id, handoff.state)
    return await handoffs.transition(
        session, handoff, "assigned", f"agent:{agent.username}", agent_id=agent.id, note="claimed"
    )


async def reassign(
    session: AsyncSession, handoff: Handoff, to_agent: Agent, actor: Agent
) -> Handoff:
    """A supervisor gives a pending or assigned hand-off to another agent."""
    if handoff.state not in handoffs.OPEN_STATES:
        raise InvalidTransition(handoff.state, "assigned", "hand-off")
    return await handoffs.transition(
        session,
        handoff,
        "assigned",
        f"agent:{actor.username}",
        agent_id=to_agent.id,
        note=f"reassigned to {to_agent.username}",
    )


async def auto_assign(
    session: AsyncSession, now: datetime | None = None, max_load: int = MAX_AUTO_LOAD
) -> list[Handoff]:
    """Give pending hand-offs (oldest first) to the least-loaded online agents."""
    assigned: list[Handoff] = []
    for handoff in await handoffs.queue(session):
        agent = await agents.least_loaded_online(session, now, max_load=max_load)
        if agent is None:
            break
        await handoffs.transition(
            session, handoff, "assigned", "system:auto_assign", agent_id=agent.id, note="auto"
        )
        assigned.append(handoff)
    return assigned


async def expire_stale(
    session: AsyncSession, max_wait: timedelta, now: datetime | None = None
) -> list[Handoff]:
    """Expire pending hand-offs older than `max_wait`; returns those expired."""
    now = now or utcnow()
    stmt = select(Handoff).where(Handoff.state == "pending", Handoff.created_at < now - max_wait)
    expired = []
    for handoff in (await session.execute(stmt)).scalars():
        await handoffs.transition(
            session, handoff, "expired", "system:expiry", note=f"no agent within {max_wait}"
        )
        expired.append(handoff)
    return expired


async def average_handling(
    session: AsyncSession, last: int = 50, default: timedelta = DEFAULT_HANDLING
) -> timedelta:
    """Mean handling time of the last `last` finished hand-offs an agent took."""
    stmt = (
        select(Handoff.assigned_at, Handoff.ended_at)
        .where(Handoff.assigned_at.is_not(None), Handoff.ended_at.is_not(None))
        .order_by(Handoff.ended_at.desc())
        .limit(last)
    )
    rows = (await session.execute(stmt)).all()
    spans = [e - a for a, e in rows if a is not None and e is not None and e >= a]
    if not spans:
        return default
    return sum(spans, timedelta()) / len(spans)


async def estimate_wait(session: AsyncSession, handoff: Handoff) -> tuple[int, timedelta]:
    """(place in the queue, estimated wait = place × average handling time)."""
    position = await handoffs.queue_position(session, handoff)
    return position, (await average_handling(session)) * max(position, 1)


@dataclass(frozen=True)
class HandoffMetrics:
    """Durations in seconds; None when that phase did not happen (yet)."""

    handoff: str
    reason: str
    time_to_handoff: float | None
    wait: float | None
    handling: float | None
    outcome: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return dict(self.__dict__)


def compute_metrics(
    handoff: Handoff,
    events: Sequence[HandoffEvent],
    citizen_turns: Sequence[datetime],
    previous_end: datetime | None,
) -> HandoffMetrics:
    """Metrics of one hand-off from recorded timestamps.

    * time to hand-off: first citizen turn of the visit that led to it → opened. The visit
      is the run of citizen turns before the opening, after the previous hand-off of the same
      conversation ended, with no gap longer than VISIT_GAP (a chat from last week is another
      visit);
    * wait: opened → first assignment (or → end when nobody took it);
    * handling: first assignment → end;
    * outcome: the closing state (resolved / returned_to_bot / expired), None while open.
    """
    events = sorted(events, key=lambda e: e.id)
    opened = events[0].created_at if events else handoff.created_at
    first_assigned = next((e.created_at for e in events if e.to_state == "assigned"), None)
    ended = next((e for e in reversed(events) if e.to_state not in handoffs.OPEN_STATES), None)
    turns = sorted(
        t for t in citizen_turns if t <= opened and (previous_end is None or t > previous_end)
    )
    start: datetime | None = None
    cursor = opened
    for turn in reversed(turns):
        if cursor - turn > VISIT_GAP:
            break
        start = cursor = turn

    def secs(a: datetime | None, b: datetime | None) -> float | None:
        return None if a is None or b is None else max((b - a).total_seconds(), 0.0)

    end_at = ended.created_at if ended else None
    return HandoffMetrics(
        handoff=handoff.public_id,
        reason=handoff.reason,
        time_to_handoff=secs(start, opened),
        wait=secs(opened, first_assigned or end_at),
        handling=secs(first_assigned, end_at),
        outcome=ended.to_state if ended else None,
    )


async def metrics(session: AsyncSession, handoff: Handoff) -> HandoffMetrics:
    """Metrics of one hand-off from its events and the conversation's messages."""
    events = list(
        (
            await session.execute(
                select(HandoffEvent)
                .where(HandoffEvent.handoff_id == handoff.id)
                .order_by(HandoffEvent.id)
            )
        ).scalars()
    )
    opened = events[0].created_at if events else handoff.created_at
    previous_end = (
        await session.execute(
            select(func.max(Handoff.ended_at)).where(
                Handoff.conversation_id == handoff.conversation_id, Handoff.id < handoff.id
            )
        )
    ).scalar_one()
    turns = (
        await session.execute(
            select(Message.created_at).where(
                Message.conversation_id == handoff.conversation_id,
                Message.sender == "citizen",
                Message.created_at >= opened - VISIT_LOOKBACK,
                Message.created_at <= opened,
            )
        )
    ).scalars()
    return compute_metrics(handoff, events, list(turns), previous_end)


async def summary(session: AsyncSession, since: datetime) -> dict[str, Any]:
    """Aggregates for supervisors: counts by outcome and mean durations since `since`."""
    stmt = select(Handoff).where(Handoff.created_at >= since).order_by(Handoff.id)
    rows: Sequence[Handoff] = list((await session.execute(stmt)).scalars())
    items = [await metrics(session, h) for h in rows]

    def mean(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return round(sum(vals) / len(vals), 1) if vals else None

    outcomes: dict[str, int] = {}
    for m in items:
        key = m.outcome or "open"
        outcomes[key] = outcomes.get(key, 0) + 1
    return {
        "count": len(items),
        "outcomes": outcomes,
        "mean_time_to_handoff": mean([m.time_to_handoff for m in items]),
        "mean_wait": mean([m.wait for m in items]),
        "mean_handling": mean([m.handling for m in items]),
    }


NOTICE_SENT = "_notice_sent"  # context flag: the citizen was already told their place


@dataclass(frozen=True)
class QueueState:
    """Facts about a citizen's new hand-off; the caller renders the words
    (`store.queue_notice`, `bot.console.notice`)."""

    in_service: bool
    next_opening: datetime | None
    anyone_on_duty: bool
    position: int
    expected_wait: timedelta


async def queue_state(
    session: AsyncSession, handoff: Handoff, now: datetime, hours: ServiceHours
) -> QueueState:
    """Service hours, whether any agent is online, and the place and estimated wait."""
    on_duty = bool(await agents.online_agents(session, now))
    position, wait = await estimate_wait(session, handoff)
    return QueueState(hours.in_service(now), hours.next_opening(now), on_duty, position, wait)


def mark_noticed(handoff: Handoff) -> None:
    """Remember in the hand-off's context that the citizen has been told."""
    handoff.context = {**(handoff.context or {}), NOTICE_SENT: True}


def was_noticed(handoff: Handoff) -> bool:
    """True if a notice was already sent for this hand-off."""
    return bool((handoff.context or {}).get(NOTICE_SENT))


LEAVE_MESSAGE_PAYLOAD = "/leave_message"
# What a waiting citizen types instead of pressing the 留言登记工单 button (punctuation ignored).
LEAVE_MESSAGE_WORDS = frozenset(
    "留言 我要留言 我想留言 留个言 留言吧 留言登记 留言登记工单 登记工单 我要登记工单 登记 "
    "我要登记 帮我登记 登记一下 那就留言 那我留言 先留言 我先留言 我要留言登记 提交工单".split()
)
_NOT_WORDS = re.compile(r"[\s，。,.!！?？~～、]+")


def wants_to_leave_message(text: str) -> bool:
    """True for the 留言登记工单 button's payload or the same wish typed as words."""
    text = (text or "").strip()
    return text == LEAVE_MESSAGE_PAYLOAD or _NOT_WORDS.sub("", text) in LEAVE_MESSAGE_WORDS


async def leave_message_instead(session: AsyncSession, handoff: Handoff) -> bool:
    """The citizen chose to leave a message (work order) instead of waiting: a *pending*
    hand-off goes back to the bot so Rasa can run the work-order form. False if an agent already
    has the chat (then the agent handles it)."""
    if handoff.state != "pending":
        return False
    await handoffs.transition(
        session, handoff, "returned_to_bot", "citizen", note="left a message instead of waiting"
    )
    return True
