"""JSON shapes the console shows. Every text leaves masked (phones, ID numbers); the browser
renders it with textContent only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.conversations import message_json
from store.crypto import mask_text
from store.models import Agent, ChannelIdentity, Conversation, Handoff, Message, utcnow


def masked_message(msg: Message | dict[str, Any]) -> dict[str, Any]:
    """A stored message as the console shows it: text masked, `masked` says if it changed."""
    data = dict(message_json(msg) if isinstance(msg, Message) else msg)
    text = data.get("text") or ""
    shown = mask_text(text)
    data["text"] = shown
    data["masked"] = shown != text
    return data


def masked_value(value: Any) -> Any:
    """Mask strings inside a JSON-like structure (form slots in the hand-off context); keys
    for bookkeeping (`_…`, `…_id`) are left out."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {
            str(k): masked_value(v)
            for k, v in value.items()
            if not (str(k).startswith("_") or str(k).endswith("_id"))
        }
    if isinstance(value, list):
        return [masked_value(v) for v in value]
    return value


async def handoff_summary(
    session: AsyncSession, handoff: Handoff, now: datetime | None = None
) -> dict[str, Any]:
    """One row of the queue."""
    now = now or utcnow()
    conv = await session.get_one(Conversation, handoff.conversation_id)
    identity = await session.get_one(ChannelIdentity, conv.channel_identity_id)
    agent = await session.get(Agent, handoff.agent_id) if handoff.agent_id else None
    last = (
        await session.execute(
            select(Message)
            .where(Message.conversation_id == conv.id, Message.sender == "citizen")
            .order_by(Message.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    end = handoff.ended_at or now
    return {
        "id": handoff.public_id,
        "conversation": conv.public_id,
        "channel": identity.channel,
        "citizen": identity.display_name or f"{identity.channel}访客",
        "state": handoff.state,
        "reason": handoff.reason,
        "agent": (
            {"id": agent.id, "display_name": agent.display_name, "username": agent.username}
            if agent
            else None
        ),
        "created_at": handoff.created_at.isoformat(),
        "assigned_at": handoff.assigned_at.isoformat() if handoff.assigned_at else None,
        "waiting_seconds": int(((handoff.assigned_at or end) - handoff.created_at).total_seconds()),
        "last_text": mask_text(last.text)[:80] if last else "",
    }
