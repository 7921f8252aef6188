"""Shared by the notifier tests: what a citizen's conversation on one channel was told."""

from __future__ import annotations

from sqlalchemy import select

from store.conversations import ensure_conversation
from store.db import Database
from store.models import Message


async def system_messages(db: Database, channel: str, external_id: str) -> list[Message]:
    """The system messages (status notices) stored in one channel's conversation."""
    async with db.session() as s:
        conv = await ensure_conversation(s, channel, external_id)
        stmt = (
            select(Message)
            .where(Message.conversation_id == conv.id, Message.sender == "system")
            .order_by(Message.id)
        )
        return list((await s.execute(stmt)).scalars())
