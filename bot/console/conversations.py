"""Conversations in the console: bot-owned chats an agent may take over, and the audited
reveal of one message's unmasked text (only in a conversation the user owns)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console import forms, notice
from bot.console.access import owns
from bot.console.auth import ConsoleUser, requires, user_of
from bot.console.handoffs import summary_response
from bot.console.live import publish_handoff, tell_citizen
from bot.console.reveal import reveals
from bot.console.views import masked_message
from bot.keys import BUS, DB
from store import assignment, conversations, handoffs
from store.errors import NotFound
from store.models import Agent, utcnow

LIVE_WINDOW = timedelta(minutes=30)
NO_MESSAGE = "消息不存在"


@requires("agent")
async def live_conversations(request: web.Request) -> web.Response:
    """`GET /console/api/conversations` → recent bot-owned conversations (last 30 minutes)."""
    async with request.app[DB].session() as session:
        items = []
        for conv, identity in await conversations.recent_bot_owned(session, utcnow() - LIVE_WINDOW):
            last = (await conversations.history(session, conv.id, limit=1))[:1]
            items.append(
                {
                    "conversation": conv.public_id,
                    "channel": identity.channel,
                    "citizen": identity.display_name or f"{identity.channel}访客",
                    "last_text": masked_message(last[0])["text"][:80] if last else "",
                    "last_message_at": conv.last_message_at.isoformat(),
                }
            )
    return web.json_response({"conversations": items})


@requires("agent", write=True)
async def claim_conversation(request: web.Request) -> web.Response:
    """`POST /console/api/conversations/{id}/claim`: an agent takes over a bot-owned chat
    (409 when another agent already has it)."""
    user = user_of(request)
    public_id = request.match_info["id"]
    async with request.app[BUS].lock(f"conv-claim:{public_id}", wait=5):
        async with request.app[DB].session() as session:
            conv = await conversations.conversation_by_public_id(session, public_id)
            if conv is None:
                raise NotFound("会话不存在")
            handoff = await handoffs.request(
                session,
                conv,
                "claimed",
                {"claimed_by": user.username},
                actor=f"agent:{user.username}",
            )
            await assignment.claim(session, handoff, await session.get_one(Agent, user.agent_id))
    await publish_handoff(request.app, handoff, "assigned")
    await tell_citizen(request.app, handoff.conversation_id, notice.agent_joined(user.display_name))
    return await summary_response(request, handoff)


async def _message(
    request: web.Request, session: AsyncSession, user: ConsoleUser
) -> tuple[str, dict[str, Any]]:
    """`POST /console/api/messages/{id}/reveal` → the unmasked text of one message of a
    conversation the user owns; audited (`reveal message:<id>`)."""
    message_id = forms.path_id(request, missing=NO_MESSAGE)
    msg = await conversations.message_by_id(session, message_id)
    if (
        msg is None
        or not await handoffs.any_for(session, msg.conversation_id)
        or not await owns(session, user, conversation_id=msg.conversation_id)
    ):
        raise NotFound(NO_MESSAGE)
    return str(message_id), {"id": message_id, "text": msg.text}


reveal_message = reveals("message", _message)


def routes() -> list[web.RouteDef]:
    """The conversation and message routes of the console API."""
    return [
        web.get("/console/api/conversations", live_conversations),
        web.post("/console/api/conversations/{id}/claim", claim_conversation),
        web.post("/console/api/messages/{id}/reveal", reveal_message),
    ]
