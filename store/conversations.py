"""Citizens, their channel identities, conversations and stored messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.masking import mask_phone, mobiles_in
from store.models import ChannelIdentity, Citizen, Conversation, Handoff, Message, utcnow


async def ensure_conversation(
    session: AsyncSession, channel: str, external_id: str, display_name: str | None = None
) -> Conversation:
    """The conversation of (channel, external_id); creates citizen and identity on first contact."""
    stmt = (
        select(Conversation)
        .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id)
    )
    conv = (await session.execute(stmt)).scalar_one_or_none()
    if conv is not None:
        return conv
    try:
        async with session.begin_nested():
            citizen = Citizen()
            identity = ChannelIdentity(
                channel=channel, external_id=external_id, citizen=citizen, display_name=display_name
            )
            conv = Conversation(identity=identity)
            session.add_all([citizen, identity, conv])
            await session.flush()
        return conv
    except IntegrityError:
        # Another process created it at the same moment: use theirs.
        return (await session.execute(stmt)).scalar_one()


async def conversation_by_public_id(session: AsyncSession, public_id: str) -> Conversation | None:
    """Look a conversation up by Rasa's sender id."""
    stmt = select(Conversation).where(Conversation.public_id == public_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def identity_of(session: AsyncSession, conversation: Conversation) -> ChannelIdentity:
    """The channel identity a conversation belongs to."""
    return await session.get_one(ChannelIdentity, conversation.channel_identity_id)


async def recent_bot_owned(
    session: AsyncSession, since: datetime, limit: int = 50
) -> list[tuple[Conversation, ChannelIdentity]]:
    """Conversations with a message after `since` and no open hand-off, newest first."""
    from store.handoffs import OPEN_STATES

    open_ids = select(Handoff.conversation_id).where(Handoff.state.in_(OPEN_STATES))
    stmt = (
        select(Conversation, ChannelIdentity)
        .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
        .where(Conversation.last_message_at > since, Conversation.id.not_in(open_ids))
        .order_by(Conversation.last_message_at.desc())
        .limit(limit)
    )
    return [(conv, identity) for conv, identity in (await session.execute(stmt)).all()]


async def message_by_id(session: AsyncSession, message_id: int) -> Message | None:
    """One stored message by its id."""
    return await session.get(Message, message_id)


async def store_inbound(
    session: AsyncSession,
    conversation: Conversation,
    text: str,
    channel_message_id: str | None,
    payload: dict[str, Any] | None = None,
) -> Message | None:
    """Store what a citizen wrote, claimed by the caller (store/claims.py: `claimed_at` now,
    first try); None if this channel message id was stored before."""
    if channel_message_id:
        stmt = select(Message.id).where(
            Message.conversation_id == conversation.id,
            Message.channel_message_id == channel_message_id,
        )
        if (await session.execute(stmt)).first() is not None:
            return None
    msg = Message(
        conversation_id=conversation.id,
        sender="citizen",
        text=text,
        payload=payload,
        channel_message_id=channel_message_id,
        claimed_at=utcnow(),
        tries=1,
    )
    try:
        async with session.begin_nested():
            session.add(msg)
            await session.flush()
    except IntegrityError:
        return None
    # UPDATE statements, not attribute sets: `conversation` may come from another session.
    now = utcnow()
    conversation.last_message_at = now
    await session.execute(
        update(Conversation).where(Conversation.id == conversation.id).values(last_message_at=now)
    )
    await session.execute(
        update(ChannelIdentity)
        .where(ChannelIdentity.id == conversation.channel_identity_id)
        .values(last_inbound_at=now)
    )
    return msg


async def stored_inbound(
    session: AsyncSession, conversation_id: int, channel_message_id: str
) -> Message | None:
    """The citizen message stored earlier under this channel message id (a platform's retry)."""
    stmt = select(Message).where(
        Message.conversation_id == conversation_id,
        Message.channel_message_id == channel_message_id,
        Message.sender == "citizen",
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def store_outbound(
    session: AsyncSession,
    conversation_id: int,
    sender: str,
    text: str,
    payload: dict[str, Any] | None = None,
    *,
    agent_id: int | None = None,
    internal: bool = False,
) -> Message:
    """Store a bot, agent or system message (or an agent's internal note)."""
    msg = Message(
        conversation_id=conversation_id,
        sender=sender,
        text=text,
        payload=payload,
        agent_id=agent_id,
        internal=internal,
        status="processed",
    )
    session.add(msg)
    await session.flush()
    return msg


async def history(
    session: AsyncSession, conversation_id: int, limit: int = 50, *, include_internal: bool = False
) -> Sequence[Message]:
    """The last `limit` messages of a conversation, oldest first."""
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    if not include_internal:
        stmt = stmt.where(Message.internal.is_(False))
    stmt = stmt.order_by(Message.id.desc()).limit(limit)
    rows = list((await session.execute(stmt)).scalars())
    rows.reverse()
    return rows


async def record_intents(
    session: AsyncSession, conversation_id: int, turns: Mapping[int, tuple[str, float]]
) -> int:
    """Keep what the bot understood (intent, confidence) with the citizen's stored messages
    that do not have it yet; `turns` maps message id → (intent, confidence). Returns how many
    messages were updated; ids of other conversations are ignored."""
    if not turns:
        return 0
    rows = (
        await session.execute(
            select(Message).where(
                Message.conversation_id == conversation_id,
                Message.id.in_(list(turns)),
                Message.intent.is_(None),
            )
        )
    ).scalars()
    updated = 0
    for msg in rows:
        msg.intent, msg.confidence = turns[msg.id][0][:96], turns[msg.id][1]
        updated += 1
    return updated


async def mobile_behind(
    session: AsyncSession,
    conversation_id: int,
    masked: str,
    message_id: int | None = None,
    limit: int = 20,
) -> str | None:
    """The mobile number this conversation's citizen typed that shows as `masked`
    (`138****5678`, what Rasa saw): in message `message_id` if it is theirs, else in their
    latest `limit` messages. None if they never typed such a number."""
    stmt = (
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.sender == "citizen")
        .order_by(Message.id.desc())
        .limit(limit)
    )
    candidates = list((await session.execute(stmt)).scalars())
    if message_id is not None:
        exact = await session.get(Message, message_id)
        if exact is not None and exact.conversation_id == conversation_id:
            candidates.insert(0, exact)
    for msg in candidates:
        if msg.sender != "citizen":
            continue
        for mobile in mobiles_in(msg.text):
            if mask_phone(mobile) == masked:
                return mobile
    return None


def message_json(msg: Message) -> dict[str, Any]:
    """A message as the widget and the console show it (text stays text; no HTML)."""
    created: datetime = msg.created_at
    return {
        "id": msg.id,
        "from": msg.sender,
        "text": msg.text,
        "buttons": (msg.payload or {}).get("buttons", []),
        "link": (msg.payload or {}).get("link"),
        "internal": msg.internal,
        "intent": msg.intent,
        "confidence": msg.confidence,
        "ts": created.isoformat(),
    }
