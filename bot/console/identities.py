"""Linked channel identities in the console: a supervisor sees which channels of a conversation's
citizen are linked, and unlinks one that does not belong (a wrong 绑定, a shared device, a merge
made before issue 9 from an unverified phone). Supervisors and admins only; the unlink is CSRF
protected and audited (`unlink:supervisor`, with the agent's id) by store.links.

The identity to unlink is named by its conversation's public id, the id the console already uses
for conversations; internal ids never leave the store.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.auth import error, requires, session_of
from bot.keys import DB
from bot.linking import channel_name
from store import conversations, links
from store.models import Citizen, Conversation

NOT_FOUND = "会话不存在"


def mask_external_id(external_id: str) -> str:
    """A platform user id as the console shows it: enough to tell two apart, not to reuse one
    (oABC****xyz; short ids keep their last two characters only)."""
    if len(external_id) <= 6:
        return "*" * max(len(external_id) - 2, 2) + external_id[-2:]
    return f"{external_id[:3]}****{external_id[-3:]}"


async def _linked(s: AsyncSession, citizen_id: int, this_identity: int) -> list[dict[str, Any]]:
    identities = await links.identities_of(s, citizen_id)
    ids = [i.id for i in identities]
    stmt = select(Conversation.channel_identity_id, Conversation.public_id).where(
        Conversation.channel_identity_id.in_(ids)
    )
    public = {identity_id: public_id for identity_id, public_id in await s.execute(stmt)}
    return [
        {
            "conversation": public.get(i.id),
            "channel": i.channel,
            "channel_name": channel_name(i.channel),
            "display_name": i.display_name or f"{channel_name(i.channel)}访客",
            "masked_id": mask_external_id(i.external_id),
            "since": i.created_at.isoformat(),
            "current": i.id == this_identity,
        }
        for i in identities
    ]


@requires("supervisor")
async def list_identities(request: web.Request) -> web.Response:
    """`GET /console/api/conversations/{id}/identities` → the channels linked to this
    conversation's citizen, and whether the citizen has a verified phone."""
    async with request.app[DB].session() as s:
        conv = await conversations.conversation_by_public_id(s, request.match_info["id"])
        if conv is None:
            return error(404, NOT_FOUND)
        identity = await conversations.identity_of(s, conv)
        citizen = await s.get_one(Citizen, identity.citizen_id)
        body = {
            "identities": await _linked(s, citizen.id, identity.id),
            "phone_verified": citizen.phone_verified_at is not None,
        }
    return web.json_response(body)


@requires("supervisor", write=True)
async def unlink(request: web.Request) -> web.Response:
    """`POST /console/api/conversations/{id}/unlink`: this conversation's channel identity leaves
    its citizen and becomes a citizen of its own (with the orders filed through it)."""
    session = session_of(request)
    async with request.app[DB].session() as s:
        conv = await conversations.conversation_by_public_id(s, request.match_info["id"])
        if conv is None:
            return error(404, NOT_FOUND)
        try:
            result = await links.unlink_identity(
                s, conv.channel_identity_id, by="supervisor", agent_id=session.agent_id
            )
        except links.NotLinked:
            return error(409, "该渠道没有与其他渠道关联")
        remaining = await links.linked_channels(s, result.old_citizen_id)
    return web.json_response(
        {
            "unlinked": request.match_info["id"],
            "orders_moved": result.orders_moved,
            "remaining_channels": remaining,
        }
    )


def routes() -> list[web.RouteDef]:
    """The identity routes of the console."""
    p = "/console/api/conversations/{id}"
    return [web.get(f"{p}/identities", list_identities), web.post(f"{p}/unlink", unlink)]
