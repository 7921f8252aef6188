"""Write notifications in the same transaction as the change that causes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Outbox

# Topics the notifier understands.
WORK_ORDER_STATUS = "work_order.status"
HANDOFF_CHANGED = "handoff.changed"
AGENT_MESSAGE = "conversation.message"


def emit(session: AsyncSession, topic: str, payload: dict[str, Any]) -> Outbox:
    """Queue a notification; it is delivered only if the surrounding transaction commits."""
    row = Outbox(topic=topic, payload=payload)
    session.add(row)
    return row
