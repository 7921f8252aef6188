"""Hand-off to a human as one explicit state machine.

pending → assigned → resolved; assigned → returned_to_bot; pending → expired (and a pending
hand-off may be returned to the bot when the citizen chooses to leave a message instead).
At most one open (pending or assigned) hand-off per conversation; every transition writes a
HandoffEvent and an outbox row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import InvalidTransition
from store.models import ChannelIdentity, Conversation, Handoff, HandoffEvent, utcnow
from store.outbox import HANDOFF_CHANGED, emit

OPEN_STATES = ("pending", "assigned")
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"assigned", "expired", "returned_to_bot"}),
    "assigned": frozenset({"resolved", "returned_to_bot", "assigned"}),  # →assigned: reassign
    "resolved": frozenset(),
    "returned_to_bot": frozenset(),
    "expired": frozenset(),
}
REASONS = ("request_human", "fallback", "rasa_down", "claimed")


InvalidHandoffTransition = InvalidTransition  # the old name; see store/errors.py


async def open_for(session: AsyncSession, conversation_id: int) -> Handoff | None:
    """The open hand-off of a conversation, if any: then a human owns it and the bot is silent."""
    stmt = select(Handoff).where(
        Handoff.conversation_id == conversation_id, Handoff.state.in_(OPEN_STATES)
    )
    return (await session.execute(stmt)).scalars().first()


async def open_list(session: AsyncSession) -> Sequence[Handoff]:
    """Every open (pending or assigned) hand-off, oldest first."""
    stmt = (
        select(Handoff)
        .where(Handoff.state.in_(OPEN_STATES))
        .order_by(Handoff.created_at, Handoff.id)
    )
    return list((await session.execute(stmt)).scalars())


async def any_for(session: AsyncSession, conversation_id: int) -> bool:
    """True if the conversation ever reached the console (had a hand-off in any state)."""
    stmt = select(Handoff.id).where(Handoff.conversation_id == conversation_id).limit(1)
    return (await session.execute(stmt)).first() is not None


async def assigned_to(
    session: AsyncSession,
    agent_id: int,
    *,
    conversation_id: int | None = None,
    citizen_id: int | None = None,
) -> bool:
    """True if the open hand-off of this conversation (or of any conversation of this citizen,
    on every linked channel) is assigned to `agent_id`. Exactly one of the two is given."""
    if (conversation_id is None) == (citizen_id is None):
        raise ValueError("give exactly one of conversation_id and citizen_id")
    stmt = select(Handoff.id).where(Handoff.state == "assigned", Handoff.agent_id == agent_id)
    if conversation_id is not None:
        stmt = stmt.where(Handoff.conversation_id == conversation_id)
    else:
        stmt = (
            stmt.join(Conversation, Handoff.conversation_id == Conversation.id)
            .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
            .where(ChannelIdentity.citizen_id == citizen_id)
        )
    return (await session.execute(stmt.limit(1))).first() is not None


async def request(
    session: AsyncSession,
    conversation: Conversation,
    reason: str,
    context: dict[str, Any] | None = None,
    actor: str = "bot",
) -> Handoff:
    """Open a hand-off, or return the one already open (idempotent)."""
    existing = await open_for(session, conversation.id)
    if existing is not None:
        return existing
    handoff = Handoff(
        conversation_id=conversation.id, state="pending", reason=reason, context=context
    )
    try:
        async with session.begin_nested():
            session.add(handoff)
            await session.flush()
    except IntegrityError:
        # Opened by another process at the same moment: that one is the open hand-off.
        existing = await open_for(session, conversation.id)
        if existing is None:
            raise
        return existing
    _record(session, handoff, None, "pending", actor, reason)
    return handoff


async def transition(
    session: AsyncSession,
    handoff: Handoff,
    to_state: str,
    actor: str,
    *,
    agent_id: int | None = None,
    note: str | None = None,
) -> Handoff:
    """Move a hand-off; raises InvalidHandoffTransition and changes nothing if not allowed."""
    from_state = handoff.state
    if to_state not in TRANSITIONS.get(from_state, frozenset()):
        raise InvalidTransition(from_state, to_state, "hand-off")
    handoff.state = to_state
    if to_state == "assigned":
        handoff.agent_id = agent_id
        handoff.assigned_at = handoff.assigned_at or utcnow()
    if to_state not in OPEN_STATES:
        handoff.ended_at = utcnow()
    await session.flush()
    _record(session, handoff, from_state, to_state, actor, note)
    return handoff


async def queue(session: AsyncSession) -> Sequence[Handoff]:
    """Pending hand-offs, oldest first."""
    stmt = (
        select(Handoff).where(Handoff.state == "pending").order_by(Handoff.created_at, Handoff.id)
    )
    return list((await session.execute(stmt)).scalars())


async def queue_position(session: AsyncSession, handoff: Handoff) -> int:
    """1 for the oldest pending hand-off."""
    stmt = select(func.count(Handoff.id)).where(
        Handoff.state == "pending", Handoff.id <= handoff.id
    )
    return int((await session.execute(stmt)).scalar_one())


def _record(
    session: AsyncSession,
    handoff: Handoff,
    from_state: str | None,
    to_state: str,
    actor: str,
    note: str | None,
) -> None:
    session.add(
        HandoffEvent(
            handoff_id=handoff.id, from_state=from_state, to_state=to_state, actor=actor, note=note
        )
    )
    emit(
        session,
        HANDOFF_CHANGED,
        {
            "handoff": handoff.public_id,
            "conversation_id": handoff.conversation_id,
            "from": from_state,
            "to": to_state,
            "agent_id": handoff.agent_id,
        },
    )
