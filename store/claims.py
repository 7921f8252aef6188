"""Claims on citizen messages being answered: every stored message is answered exactly once.

A citizen message is stored `received`, claimed by the process that stored it
(`claimed_at`, `tries` = 1), and marked `processed` or `failed` once answered. A message
still `received` whose claim is older than the answer bound was left behind by a process that
died or failed after storing it; the sweeper (bot/sweeper.py) or a platform's retry of the
same message claims it again. A claim is one conditional UPDATE, so of two gateway replicas
(or a sweeper and a retry) exactly one wins it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Message, utcnow

RECEIVED = "received"


def _claimable(stale_before: datetime) -> list:
    return [
        Message.sender == "citizen",
        Message.status == RECEIVED,
        or_(Message.claimed_at.is_(None), Message.claimed_at < stale_before),
    ]


async def claim(session: AsyncSession, message_id: int, stale_before: datetime) -> int | None:
    """Claim an unanswered message nobody is answering (claim released, or older than
    `stale_before`); returns the number of tries including this one, or None if it is
    answered or someone else holds a fresh claim."""
    now = utcnow()
    result = await session.execute(
        update(Message)
        .where(Message.id == message_id, *_claimable(stale_before))
        .values(claimed_at=now, tries=Message.tries + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE gives a CursorResult
        return None
    tries = await session.execute(select(Message.tries).where(Message.id == message_id))
    return int(tries.scalar_one())


async def release(session: AsyncSession, message_id: int) -> None:
    """Give up a claim on a message still unanswered (its turn failed): the next retry or
    sweep may take it at once."""
    await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == RECEIVED)
        .values(claimed_at=None)
        .execution_options(synchronize_session=False)
    )


async def unanswered(
    session: AsyncSession, stale_before: datetime, limit: int = 20
) -> Sequence[int]:
    """Ids of citizen messages nobody is answering, oldest first."""
    stmt = select(Message.id).where(*_claimable(stale_before)).order_by(Message.id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def state(session: AsyncSession, message_id: int) -> tuple[str, datetime | None]:
    """(status, claimed_at) of a message."""
    row = (
        await session.execute(
            select(Message.status, Message.claimed_at).where(Message.id == message_id)
        )
    ).one()
    return str(row[0]), row[1]
