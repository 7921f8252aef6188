"""Supervisor analytics from what the store recorded: hand-offs per day, median time to
hand-off, wait and handling time, outcomes, citizens' ratings and work-order deadlines.

Everything is computed from timestamps written when things happened (HandoffEvent, Message,
Rating, WorkOrder), so the figures can be recomputed for any window later.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, tzinfo
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import lifecycle
from store.assignment import VISIT_LOOKBACK, HandoffMetrics, compute_metrics
from store.models import Handoff, HandoffEvent, Message, Rating, WorkOrder, utcnow
from store.work_orders import SCORES

SATISFIED = ("satisfied", "basically_satisfied")  # what counts towards the satisfaction rate


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(median(present)), 1) if present else None


async def handoff_metrics_between(
    session: AsyncSession, since: datetime, until: datetime
) -> list[tuple[Handoff, HandoffMetrics]]:
    """Metrics of every hand-off opened in [since, until), in four queries whatever the count."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)  # SQLite compares strings
    in_window = (Handoff.created_at >= since) & (Handoff.created_at < until)
    rows = list(
        (await session.execute(select(Handoff).where(in_window).order_by(Handoff.id))).scalars()
    )
    if not rows:
        return []
    ids = select(Handoff.id).where(in_window).scalar_subquery()
    conv_ids = select(Handoff.conversation_id).where(in_window).scalar_subquery()
    events: dict[int, list[HandoffEvent]] = defaultdict(list)
    for ev in (
        await session.execute(
            select(HandoffEvent).where(HandoffEvent.handoff_id.in_(ids)).order_by(HandoffEvent.id)
        )
    ).scalars():
        events[ev.handoff_id].append(ev)
    # Every hand-off of those conversations (earlier ones bound the citizen's visit).
    ends: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for hid, conv_id, ended_at in await session.execute(
        select(Handoff.id, Handoff.conversation_id, Handoff.ended_at).where(
            Handoff.conversation_id.in_(conv_ids), Handoff.ended_at.is_not(None)
        )
    ):
        if ended_at is not None:
            ends[conv_id].append((hid, ended_at))
    turns: dict[int, list[datetime]] = defaultdict(list)
    for conv_id, created_at in await session.execute(
        select(Message.conversation_id, Message.created_at).where(
            Message.conversation_id.in_(conv_ids),
            Message.sender == "citizen",
            Message.created_at >= since - VISIT_LOOKBACK,
            Message.created_at < until,
        )
    ):
        turns[conv_id].append(created_at)
    out = []
    for h in rows:
        earlier = [end for hid, end in ends[h.conversation_id] if hid < h.id]
        previous_end = max(earlier) if earlier else None
        out.append((h, compute_metrics(h, events[h.id], turns[h.conversation_id], previous_end)))
    return out


async def handoff_report(
    session: AsyncSession, since: datetime, until: datetime, tz: tzinfo
) -> dict[str, Any]:
    """Hand-offs opened in [since, until): count per local day, outcomes, median durations
    (seconds) of time to hand-off, wait and handling."""
    items = await handoff_metrics_between(session, since, until)
    per_day: dict[date, int] = defaultdict(int)
    outcomes: dict[str, int] = defaultdict(int)
    for handoff, m in items:
        per_day[handoff.created_at.astimezone(tz).date()] += 1
        outcomes[m.outcome or "open"] += 1
    first, last = since.astimezone(tz).date(), (until - timedelta(microseconds=1)).astimezone(tz)
    days = []
    day = first
    while day <= last.date():
        days.append({"day": day.isoformat(), "handoffs": per_day.get(day, 0)})
        day += timedelta(days=1)
    metrics = [m for _, m in items]
    return {
        "count": len(items),
        "per_day": days,
        "outcomes": dict(outcomes),
        "median_time_to_handoff": _median([m.time_to_handoff for m in metrics]),
        "median_wait": _median([m.wait for m in metrics]),
        "median_handling": _median([m.handling for m in metrics]),
    }


async def rating_report(session: AsyncSession, since: datetime, until: datetime) -> dict[str, Any]:
    """Citizens' 评价 given in [since, until): count per score and the satisfaction rate
    ((满意 + 基本满意) / all ratings, None without ratings)."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    counts = {score: 0 for score in SCORES}
    stmt = (
        select(Rating.score, func.count(Rating.id))
        .where(Rating.created_at >= since, Rating.created_at < until)
        .group_by(Rating.score)
    )
    for score, n in await session.execute(stmt):
        counts[score] = counts.get(score, 0) + int(n)
    total = sum(counts.values())
    satisfied = sum(counts.get(s, 0) for s in SATISFIED)
    return {
        "count": total,
        "scores": counts,
        "satisfaction_rate": round(satisfied / total, 3) if total else None,
    }


async def work_order_report(
    session: AsyncSession, since: datetime, until: datetime, now: datetime | None = None
) -> dict[str, int]:
    """Orders filed in the window, and right now: open, past the result deadline, under
    督办, with a delay reason."""
    now = now or utcnow()
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    is_open = WorkOrder.status.in_(lifecycle.OPEN_STATUSES)

    async def count(*where: Any) -> int:
        stmt = select(func.count(WorkOrder.id)).where(*where)
        return int((await session.execute(stmt)).scalar_one())

    return {
        "filed": await count(WorkOrder.created_at >= since, WorkOrder.created_at < until),
        "open": await count(is_open),
        "overdue": await count(is_open, WorkOrder.result_due < now),
        "supervision": await count(is_open, WorkOrder.supervision.is_(True)),
        # Whether a delay reason exists is visible without decrypting it (NULL stays NULL).
        "delayed": await count(is_open, WorkOrder.delay_reason_enc.is_not(None)),
    }


async def report(
    session: AsyncSession, since: datetime, until: datetime, tz: tzinfo
) -> dict[str, Any]:
    """Everything the supervisor board shows for one window."""
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "handoffs": await handoff_report(session, since, until, tz),
        "ratings": await rating_report(session, since, until),
        "work_orders": await work_order_report(session, since, until),
    }
