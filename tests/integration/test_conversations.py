"""A citizen's new message keeps the conversation "recent" for the console's live list."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from store import conversations
from store.db import Database
from store.models import ChannelIdentity, Conversation, utcnow


async def test_new_message_moves_last_message_at_of_an_old_conversation(db: Database) -> None:
    async with db.session() as s:
        conv = await conversations.ensure_conversation(s, "rest", "old-timer")
    two_hours_ago = utcnow() - timedelta(hours=2)
    async with db.session() as s:
        await s.execute(
            update(Conversation)
            .where(Conversation.id == conv.id)
            .values(last_message_at=two_hours_ago)
        )
    # `conv` is from an earlier session, as it is in the router.
    async with db.session() as s:
        assert await conversations.store_inbound(s, conv, "我又来问一下", "m-1") is not None
    async with db.session() as s:
        fresh = await s.get_one(Conversation, conv.id)
        identity = await s.get_one(ChannelIdentity, conv.channel_identity_id)
    assert utcnow() - fresh.last_message_at < timedelta(minutes=1)
    assert identity.last_inbound_at is not None
    assert utcnow() - identity.last_inbound_at < timedelta(minutes=1)
