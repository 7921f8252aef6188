"""Data for tests, built through the store's own functions (STYLE.md, "Testing": data from
builders, not copied blocks). Each builder states the defaults a test may rely on."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from store import lifecycle, work_orders
from store.categories import seed_taxonomy
from store.conversations import ensure_conversation, identity_of
from store.crypto import PersonalDataCipher
from store.db import Database
from store.links import link_identity
from store.models import Conversation, WorkOrder

# A street-light report (路灯) in the "urban" category, filed by the bot.
STREET_LIGHT: dict[str, Any] = {
    "kind": "report",
    "category_code": "urban",
    "description": "小区门口路灯坏了",
    "location": "幸福路8号",
    "contact_name": "王先生",
    "phone": "13912345678",
}


async def linked_citizen(
    session: AsyncSession, channel: str, external_id: str, *linked: tuple[str, str]
) -> Conversation:
    """The conversation of `channel`/`external_id`; each (channel, external id) in `linked`
    gets a conversation whose identity is linked to the same citizen."""
    conv = await ensure_conversation(session, channel, external_id)
    citizen_id = (await identity_of(session, conv)).citizen_id
    for other_channel, other_id in linked:
        other = await ensure_conversation(session, other_channel, other_id)
        await link_identity(session, (await identity_of(session, other)).id, citizen_id)
    return conv


async def file_order(
    session: AsyncSession,
    cipher: PersonalDataCipher,
    conversation: Conversation | None,
    **fields: Any,
) -> WorkOrder:
    """A work order filed by the bot in `conversation` (None: without one; taxonomy seeded
    first): the
    `STREET_LIGHT` report unless `fields` say otherwise."""
    await seed_taxonomy(session)
    return await work_orders.create_work_order(
        session,
        cipher,
        conversation=conversation,
        **{"actor": "bot", "idempotency_key": None, **STREET_LIGHT, **fields},
    )


async def move(db: Database, order_id: int, status: str, actor: str = "agent:li") -> None:
    """Move a work order to `status` in its own transaction (which emits the status notice)."""
    async with db.session() as s:
        order = await work_orders.by_id(s, order_id)
        await lifecycle.transition(s, order, status, actor)
