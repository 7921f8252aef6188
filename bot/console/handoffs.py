"""Hand-offs in the console: the queue, one hand-off's page, claim, reassign, reply, internal
note, return to the bot, close, the audited reveal of what the bot learnt, and the metrics.

Every route that takes a hand-off asks the ownership rule (`bot.console.access`); errors are
raised and answered by `bot.console.errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console import auth, forms, notice, orders
from bot.console.access import NOT_YOURS, load_handoff, may_view, owned_handoff, owns
from bot.console.auth import ConsoleUser, requires, user_of
from bot.console.errors import Refused
from bot.console.live import PRIVATE_TOPIC, publish_handoff, tell_citizen
from bot.console.reveal import reveals
from bot.console.views import (
    NoSuchEntry,
    context_entry,
    handoff_summary,
    masked_message,
    masked_paths,
    masked_value,
)
from bot.keys import BUS, CIPHER, DB, RASA, ROUTER
from bot.messages import Reply
from bot.router import Delivery
from store import assignment, canned, conversations, handoffs
from store.errors import NotFound
from store.handoff_context import unseal
from store.models import Agent, Conversation, Handoff, utcnow

load = load_handoff
owned = owned_handoff


# --- the queue and one hand-off's page --------------------------------------------------------


@requires("agent")
async def list_handoffs(request: web.Request) -> web.Response:
    """`GET /console/api/handoffs` → open hand-offs (pending oldest first, then assigned)."""
    async with request.app[DB].session() as session:
        now = utcnow()
        items = [await handoff_summary(session, h, now) for h in await handoffs.open_list(session)]
    pending = [i for i in items if i["state"] == "pending"]
    for position, item in enumerate(pending, start=1):
        item["position"] = position
    return web.json_response({"handoffs": items, "now": utcnow().isoformat()})


@requires("agent")
async def get_handoff(request: web.Request) -> web.Response:
    """`GET /console/api/handoffs/{id}` → hand-off, transcript, context, intents, work orders."""
    user = user_of(request)
    async with request.app[DB].session() as session:
        handoff = await load(session, request.match_info["id"])
        if not await may_view(session, user, handoff):
            raise Refused(403, NOT_YOURS)
        sender = (await session.get_one(Conversation, handoff.conversation_id)).public_id
    # Rasa's tracker is read outside any transaction: no DB connection waits on HTTP.
    turns = await request.app[RASA].user_turns(sender)
    async with request.app[DB].session() as session:
        handoff = await load(session, request.match_info["id"])
        summary = await handoff_summary(session, handoff)
        conv = await session.get_one(Conversation, handoff.conversation_id)
        identity = await conversations.identity_of(session, conv)
        await conversations.record_intents(
            session, conv.id, {t.message_id: (t.intent, t.confidence) for t in turns}
        )
        history = await conversations.history(session, conv.id, limit=200, include_internal=True)
        transcript = [masked_message(m) for m in history]
        intents = [
            {"text": m["text"][:60], "intent": m["intent"], "confidence": m["confidence"]}
            for m in transcript
            if m["from"] == "citizen" and m["intent"]
        ][-5:]
        citizen_orders = await orders.for_citizen(request, session, user, identity.citizen_id)
        values = {
            "name": identity.display_name or "",
            "agent": user.display_name,
            "tracking_no": citizen_orders[0]["tracking_no"] if citizen_orders else "",
        }
        metrics = (await assignment.metrics(session, handoff)).as_dict()
    context = unseal(handoff.context, request.app[CIPHER], handoff.conversation_id)
    return web.json_response(
        {
            "handoff": summary,
            "context": masked_value(context),
            "context_masked": masked_paths(context),
            "transcript": transcript,
            "intents": intents,
            "work_orders": citizen_orders,
            "canned": canned.rendered(values),
            "metrics": metrics,
        }
    )


# --- actions on a hand-off ---------------------------------------------------------------------

Change = Callable[[AsyncSession, Handoff], Awaitable[Any]]


async def _locked_change(request: web.Request, change: Change) -> Handoff:
    """Run `change(session, handoff)` under a bus lock and a row lock; errors propagate (and
    roll the change back)."""
    public_id = request.match_info["id"]
    async with request.app[BUS].lock(f"handoff:{public_id}", ttl=10, wait=5):
        async with request.app[DB].session() as session:
            handoff = await load(session, public_id, for_update=True)
            await change(session, handoff)
        return handoff


async def summary_response(request: web.Request, handoff: Handoff) -> web.Response:
    """`{"handoff": <summary as stored now>}`."""
    async with request.app[DB].session() as session:
        fresh = await session.get_one(Handoff, handoff.id)
        return web.json_response({"handoff": await handoff_summary(session, fresh)})


@requires("agent", write=True)
async def claim(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/claim`: take a pending hand-off (409 if taken)."""
    user = user_of(request)

    async def change(session: AsyncSession, handoff: Handoff) -> None:
        await assignment.claim(session, handoff, await session.get_one(Agent, user.agent_id))

    handoff = await _locked_change(request, change)
    await publish_handoff(request.app, handoff, "assigned")
    await tell_citizen(request.app, handoff.conversation_id, notice.agent_joined(user.display_name))
    return await summary_response(request, handoff)


@requires("supervisor", write=True)
async def reassign(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/reassign {"agent_id"}`: supervisors only; audited."""
    user = user_of(request)
    target_id = (await forms.body(request)).get("agent_id")
    if not isinstance(target_id, int):
        raise Refused(400, "请选择坐席")
    async with request.app[DB].session() as session:
        target = await session.get(Agent, target_id)
        if target is None or not target.active:
            raise Refused(400, "坐席不存在或已停用")
        target_name = target.username

    async def change(session: AsyncSession, handoff: Handoff) -> None:
        actor = await session.get_one(Agent, user.agent_id)
        to_agent = await session.get_one(Agent, target_id)
        await assignment.reassign(session, handoff, to_agent, actor)

    handoff = await _locked_change(request, change)
    await auth.audit(
        request, user.agent_id, "reassign", f"handoff:{handoff.public_id}→{target_name}"
    )
    await publish_handoff(request.app, handoff, "reassigned")
    return await summary_response(request, handoff)


async def _finish(request: web.Request, to_state: str, reply: Reply) -> web.Response:
    user = user_of(request)

    async def change(session: AsyncSession, handoff: Handoff) -> None:
        # A closed hand-off answers 409 (below); an open one only to its owner.
        if handoff.state in handoffs.OPEN_STATES and not await owns(session, user, handoff=handoff):
            raise Refused(403, NOT_YOURS)
        await handoffs.transition(session, handoff, to_state, f"agent:{user.username}")

    handoff = await _locked_change(request, change)
    await publish_handoff(request.app, handoff, to_state)
    await tell_citizen(request.app, handoff.conversation_id, reply)
    return await summary_response(request, handoff)


@requires("agent", write=True)
async def return_to_bot(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/return`: the assistant answers again."""
    return await _finish(request, "returned_to_bot", notice.returned_to_bot())


@requires("agent", write=True)
async def close(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/close`: the hand-off is resolved."""
    return await _finish(request, "resolved", notice.closed())


@requires("agent", write=True)
async def reply(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/reply {"text"}`: live to the citizen's channel."""
    user = user_of(request)
    text = forms.text(
        await forms.body(request), "text", required=f"回复内容不能为空，且不超过{forms.MAX_TEXT}字"
    )
    async with request.app[DB].session() as session:
        handoff = await load(session, request.match_info["id"])
        if handoff.state != "assigned":
            raise Refused(409, "请先接入该会话")
        if not await owns(session, user, handoff=handoff):
            raise Refused(403, NOT_YOURS)
        conversation_id = handoff.conversation_id
    outcome = await request.app[ROUTER].push(
        conversation_id, [Reply(text or "", sender="agent")], agent_id=user.agent_id
    )
    # A live reply is not retried (the agent sees it failed and may send it again).
    return web.json_response({"delivered": outcome is Delivery.DELIVERED})


@requires("agent", write=True)
async def note(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/note {"text"}`: an internal note, never sent."""
    user = user_of(request)
    text = forms.text(
        await forms.body(request), "text", required=f"备注内容不能为空，且不超过{forms.MAX_TEXT}字"
    )
    async with request.app[DB].session() as session:
        handoff = await owned(session, user, request.match_info["id"])
        conv = await session.get_one(Conversation, handoff.conversation_id)
        msg = await conversations.store_outbound(
            session, conv.id, "agent", text or "", agent_id=user.agent_id, internal=True
        )
        data = conversations.message_json(msg)
        public_id = conv.public_id
    await request.app[BUS].publish(
        PRIVATE_TOPIC, {"type": "message", "conversation": public_id, "message": data}
    )
    return web.json_response({"message": masked_message(data)})


async def _context_entry(
    request: web.Request, session: AsyncSession, user: ConsoleUser
) -> tuple[str, dict[str, Any]]:
    """`POST /console/api/handoffs/{id}/context/reveal {"path": ["slots", "phone"]}` → the
    unmasked value of one entry of what the bot learnt; audited (`reveal context:<id>:<path>`)."""
    path = (await forms.body(request)).get("path")
    if not isinstance(path, list) or not 0 < len(path) <= 8:
        raise Refused(400, "请指定要查看的字段")
    handoff = await owned(session, user, request.match_info["id"])
    try:
        value = context_entry(
            unseal(handoff.context, request.app[CIPHER], handoff.conversation_id), path
        )
    except NoSuchEntry:
        raise NotFound("该字段不存在") from None
    dotted = ".".join(str(p) for p in path)
    return f"{handoff.public_id}:{dotted}", {"path": path, "value": value}


reveal_context = reveals("context", _context_entry)


@requires("supervisor")
async def metrics_summary(request: web.Request) -> web.Response:
    """`GET /console/api/metrics?hours=24` → hand-off outcomes and mean durations."""
    try:
        hours = min(max(float(request.query.get("hours", "24")), 1), 24 * 90)
    except ValueError:
        raise Refused(400, "hours 参数错误") from None
    async with request.app[DB].session() as session:
        data = await assignment.summary(session, utcnow() - timedelta(hours=hours))
    return web.json_response(data)


def routes() -> list[web.RouteDef]:
    """The hand-off routes of the console API."""
    p = "/console/api/handoffs"
    return [
        web.get(p, list_handoffs),
        web.get(f"{p}/{{id}}", get_handoff),
        web.post(f"{p}/{{id}}/claim", claim),
        web.post(f"{p}/{{id}}/reassign", reassign),
        web.post(f"{p}/{{id}}/reply", reply),
        web.post(f"{p}/{{id}}/note", note),
        web.post(f"{p}/{{id}}/return", return_to_bot),
        web.post(f"{p}/{{id}}/close", close),
        web.post(f"{p}/{{id}}/context/reveal", reveal_context),
        web.get("/console/api/metrics", metrics_summary),
    ]
