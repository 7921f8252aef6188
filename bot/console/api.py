"""The console's JSON API under /console/api/. Every route checks the role; writes need CSRF."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.console import access, auth, notice, orders
from bot.console.auth import error, requires, session_of
from bot.console.live import PRIVATE_TOPIC, publish_handoff, tell_citizen
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
from store import agents, assignment, canned, conversations, handoffs, work_orders
from store.bus import LockTimeout
from store.handoff_context import unseal
from store.models import (
    Agent,
    ChannelIdentity,
    Conversation,
    Handoff,
    Message,
    utcnow,
)

log = logging.getLogger(__name__)

MAX_TEXT = 2000


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _text(body: dict[str, Any] | None) -> str | None:
    text = (body or {}).get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return None
    return text.strip()


async def _handoff_or_404(s, public_id: str, *, for_update: bool = False) -> Handoff:
    """The hand-off, or a JSON 404 raised for the console (the transaction rolls back)."""
    handoff = await assignment.load(s, public_id, for_update=for_update)
    if handoff is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "转人工记录不存在"}, ensure_ascii=False),
            content_type="application/json",
        )
    return handoff


# --- queue and conversation view -------------------------------------------------------------


@requires("agent")
async def list_handoffs(request: web.Request) -> web.Response:
    """`GET /console/api/handoffs` → open hand-offs (pending oldest first, then assigned)."""
    async with request.app[DB].session() as s:
        stmt = (
            select(Handoff)
            .where(Handoff.state.in_(handoffs.OPEN_STATES))
            .order_by(Handoff.created_at, Handoff.id)
        )
        rows = list((await s.execute(stmt)).scalars())
        now = utcnow()
        items = [await handoff_summary(s, h, now) for h in rows]
    pending = [i for i in items if i["state"] == "pending"]
    for position, item in enumerate(pending, start=1):
        item["position"] = position
    return web.json_response({"handoffs": items, "now": utcnow().isoformat()})


@requires("agent")
async def get_handoff(request: web.Request) -> web.Response:
    """`GET /console/api/handoffs/{id}` → hand-off, transcript, context, intents, work orders."""
    session = session_of(request)
    async with request.app[DB].session() as s:
        handoff = await _handoff_or_404(s, request.match_info["id"])
        if not await access.may_view(s, session, handoff):
            return error(403, "该会话由其他坐席处理")
        sender = (await s.get_one(Conversation, handoff.conversation_id)).public_id
    # Rasa's tracker is read outside any transaction: no DB connection waits on HTTP.
    turns = await request.app[RASA].user_turns(sender)
    async with request.app[DB].session() as s:
        handoff = await _handoff_or_404(s, request.match_info["id"])
        summary = await handoff_summary(s, handoff)
        conv = await s.get_one(Conversation, handoff.conversation_id)
        identity = await s.get_one(ChannelIdentity, conv.channel_identity_id)
        await conversations.record_intents(
            s, conv.id, {t.message_id: (t.intent, t.confidence) for t in turns}
        )
        history = await conversations.history(s, conv.id, limit=200, include_internal=True)
        transcript = [masked_message(m) for m in history]
        intents = [
            {"text": m["text"][:60], "intent": m["intent"], "confidence": m["confidence"]}
            for m in transcript
            if m["from"] == "citizen" and m["intent"]
        ][-5:]
        citizen_orders = await _orders(request, s, session, identity.citizen_id)
        values = {
            "name": identity.display_name or "",
            "agent": session.display_name,
            "tracking_no": citizen_orders[0]["tracking_no"] if citizen_orders else "",
        }
        metrics = (await assignment.metrics(s, handoff)).as_dict()
    context = unseal(handoff.context, request.app[CIPHER])
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


async def _orders(
    request: web.Request, s, session: auth.ConsoleSession, citizen_id: int
) -> list[dict[str, Any]]:
    """The citizen's recent orders (masked) with what this user may do to each."""
    out = []
    for order in await work_orders.orders_for_citizen(s, citizen_id):
        out.append(orders.console_order(order, request, await orders.access(s, session, order)))
    return out


# --- actions on a hand-off ---------------------------------------------------------------------


async def _locked_change(request: web.Request, public_id: str, change) -> web.Response | Handoff:
    """Run `change(session, handoff)` under a bus lock and a row lock; map errors to HTTP."""
    try:
        async with request.app[BUS].lock(f"handoff:{public_id}", ttl=10, wait=5):
            async with request.app[DB].session() as s:
                handoff = await _handoff_or_404(s, public_id, for_update=True)
                result = await change(s, handoff)
                if isinstance(result, web.Response):
                    return result
            return handoff
    except assignment.HandoffTaken as exc:
        return error(409, f"该会话已被处理（{exc.state}）")
    except handoffs.InvalidHandoffTransition as exc:
        return error(409, f"当前状态 {exc.from_state} 不能执行此操作")
    except LockTimeout:
        return error(503, "系统繁忙，请重试")


@requires("agent", write=True)
async def claim(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/claim`: take a pending hand-off."""
    session = session_of(request)
    newly_assigned = False

    async def change(s, handoff: Handoff):
        nonlocal newly_assigned
        agent = await s.get_one(Agent, session.agent_id)
        newly_assigned = handoff.state == "pending"
        await assignment.claim(s, handoff, agent)

    result = await _locked_change(request, request.match_info["id"], change)
    if isinstance(result, web.Response):
        return result
    await publish_handoff(request.app, result, "assigned")
    await tell_citizen(
        request.app, result.conversation_id, notice.agent_joined(session.display_name)
    )
    return await _summary_response(request, result)


@requires("supervisor", write=True)
async def reassign(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/reassign {"agent_id"}`: supervisors only; audited."""
    session = session_of(request)
    body = await _body(request)
    target_id = (body or {}).get("agent_id")
    if not isinstance(target_id, int):
        return error(400, "请选择坐席")
    async with request.app[DB].session() as s:
        target = await s.get(Agent, target_id)
        if target is None or not target.active:
            return error(400, "坐席不存在或已停用")
        target_name = target.username

    async def change(s, handoff: Handoff):
        actor = await s.get_one(Agent, session.agent_id)
        to_agent = await s.get_one(Agent, target_id)
        await assignment.reassign(s, handoff, to_agent, actor)

    result = await _locked_change(request, request.match_info["id"], change)
    if isinstance(result, web.Response):
        return result
    await auth.audit(
        request, session.agent_id, "reassign", f"handoff:{result.public_id}→{target_name}"
    )
    await publish_handoff(request.app, result, "reassigned")
    return await _summary_response(request, result)


async def _finish(request: web.Request, to_state: str, reply: Reply) -> web.Response:
    session = session_of(request)

    async def change(s, handoff: Handoff):
        if handoff.state in handoffs.OPEN_STATES and not await access.owns(
            s, session, handoff=handoff
        ):
            return error(403, "该会话由其他坐席处理")
        await handoffs.transition(s, handoff, to_state, f"agent:{session.username}")

    result = await _locked_change(request, request.match_info["id"], change)
    if isinstance(result, web.Response):
        return result
    await publish_handoff(request.app, result, to_state)
    await tell_citizen(request.app, result.conversation_id, reply)
    return await _summary_response(request, result)


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
    session = session_of(request)
    text = _text(await _body(request))
    if text is None:
        return error(400, f"回复内容不能为空，且不超过{MAX_TEXT}字")
    async with request.app[DB].session() as s:
        handoff = await _handoff_or_404(s, request.match_info["id"])
        if handoff.state != "assigned":
            return error(409, "请先接入该会话")
        if not await access.owns(s, session, handoff=handoff):
            return error(403, "该会话由其他坐席处理")
        conversation_id = handoff.conversation_id
    outcome = await request.app[ROUTER].push(
        conversation_id, [Reply(text, sender="agent")], agent_id=session.agent_id
    )
    # A live reply is not retried (the agent sees it failed and may send it again).
    return web.json_response({"delivered": outcome is Delivery.DELIVERED})


@requires("agent", write=True)
async def note(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/note {"text"}`: an internal note, never sent."""
    session = session_of(request)
    text = _text(await _body(request))
    if text is None:
        return error(400, f"备注内容不能为空，且不超过{MAX_TEXT}字")
    async with request.app[DB].session() as s:
        handoff = await _handoff_or_404(s, request.match_info["id"])
        if not await access.owns(s, session, handoff=handoff):
            return error(403, "该会话由其他坐席处理")
        conv = await s.get_one(Conversation, handoff.conversation_id)
        msg = await conversations.store_outbound(
            s, conv.id, "agent", text, agent_id=session.agent_id, internal=True
        )
        data = conversations.message_json(msg)
        public_id = conv.public_id
    await request.app[BUS].publish(
        PRIVATE_TOPIC, {"type": "message", "conversation": public_id, "message": data}
    )
    return web.json_response({"message": masked_message(data)})


@requires("agent", write=True)
async def reveal(request: web.Request) -> web.Response:
    """`POST /console/api/messages/{id}/reveal` → the unmasked text of one message; audited."""
    session = session_of(request)
    try:
        message_id = int(request.match_info["id"])
    except ValueError:
        return error(404, "消息不存在")
    async with request.app[DB].session() as s:
        msg = await s.get(Message, message_id)
        has_handoff = (
            msg is not None
            and (
                await s.execute(
                    select(Handoff.id).where(Handoff.conversation_id == msg.conversation_id)
                )
            ).first()
            is not None
        )
        if (
            msg is None
            or not has_handoff
            or not await access.owns(s, session, conversation_id=msg.conversation_id)
        ):
            return error(404, "消息不存在")
        text = msg.text
    await auth.audit(request, session.agent_id, "reveal", f"message:{message_id}")
    return web.json_response({"id": message_id, "text": text})


@requires("agent", write=True)
async def reveal_context(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/context/reveal {"path": ["slots", "phone"]}` → the
    unmasked value of one entry of what the bot learnt; audited (`reveal context:<id>:<path>`)."""
    session = session_of(request)
    path = (await _body(request) or {}).get("path")
    if not isinstance(path, list) or not 0 < len(path) <= 8:
        return error(400, "请指定要查看的字段")
    async with request.app[DB].session() as s:
        handoff = await _handoff_or_404(s, request.match_info["id"])
        if not await access.owns(s, session, handoff=handoff):
            return error(403, "该会话由其他坐席处理")
        try:
            value = context_entry(unseal(handoff.context, request.app[CIPHER]), path)
        except NoSuchEntry:
            return error(404, "该字段不存在")
        public_id = handoff.public_id
    dotted = ".".join(str(p) for p in path)
    await auth.audit(request, session.agent_id, "reveal", f"context:{public_id}:{dotted}")
    return web.json_response({"path": path, "value": value})


async def _summary_response(request: web.Request, handoff: Handoff) -> web.Response:
    async with request.app[DB].session() as s:
        h = await s.get_one(Handoff, handoff.id)
        return web.json_response({"handoff": await handoff_summary(s, h)})


# --- work orders for this citizen -------------------------------------------------------------


@requires("agent")
async def categories(request: web.Request) -> web.Response:
    """`GET /console/api/categories` → work-order categories for the form and departments
    (承办单位) to dispatch to, each as code and name."""
    from store.models import Category, Department

    async with request.app[DB].session() as s:
        rows = list((await s.execute(select(Category).order_by(Category.id))).scalars())
        departments = list((await s.execute(select(Department).order_by(Department.id))).scalars())
    names = {c.id: c.name for c in rows}
    items = [
        {"code": c.code, "name": f"{names[c.parent_id]} / {c.name}" if c.parent_id else c.name}
        for c in rows
    ]
    return web.json_response(
        {
            "categories": items,
            "departments": [{"code": d.code, "name": d.name} for d in departments],
        }
    )


@requires("agent", write=True)
async def create_order(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/work-orders` → a work order for this citizen.

    Body: kind, category_code?, description, location?, contact_name?, phone. The same body sent
    twice (a double click, a retry) files one order. The citizen is told the tracking number.
    """
    session = session_of(request)
    body = await _body(request)
    if body is None:
        return error(400, "请求格式错误")
    fields = {
        k: body.get(k)
        for k in ("kind", "category_code", "description", "location", "contact_name", "phone")
    }
    if any(v is not None and not isinstance(v, str) for v in fields.values()):
        return error(400, "字段格式错误")
    hid = request.match_info["id"]
    digest = hashlib.sha256(
        json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:24]
    try:
        async with request.app[DB].session() as s:
            handoff = await _handoff_or_404(s, hid)
            if not await access.owns(s, session, handoff=handoff):
                return error(403, "该会话由其他坐席处理")
            conv = await s.get_one(Conversation, handoff.conversation_id)
            order = await work_orders.create_work_order(
                s,
                request.app[CIPHER],
                conversation=conv,
                kind=fields["kind"] or "report",
                category_code=fields["category_code"] or None,
                description=fields["description"] or "",
                location=fields["location"],
                contact_name=fields["contact_name"],
                phone=fields["phone"] or "",
                actor=f"agent:{session.username}",
                idempotency_key=f"console:{hid}:{digest}",
            )
            tracking_no, conversation_id = order.tracking_no, conv.id
    except work_orders.InvalidWorkOrder as exc:
        return error(400, str(exc))
    await tell_citizen(
        request.app,
        conversation_id,
        Reply(
            text=f"已为您登记工单，编号 {tracking_no}。凭编号和手机号后4位可随时查询办理进度。",
            sender="system",
        ),
    )
    return web.json_response({"work_order": {"tracking_no": tracking_no}}, status=201)


@requires("agent", write=True)
async def note_order(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/work-orders/{tracking_no}/note {"text"}`: add what the
    citizen said later to one of *their* work orders (an event on its timeline)."""
    session = session_of(request)
    text = _text(await _body(request))
    if text is None:
        return error(400, f"补充内容不能为空，且不超过{MAX_TEXT}字")
    async with request.app[DB].session() as s:
        handoff = await _handoff_or_404(s, request.match_info["id"])
        if not await access.owns(s, session, handoff=handoff):
            return error(403, "该会话由其他坐席处理")
        order = await work_orders.by_tracking_no(s, request.match_info["tracking_no"])
        if order is None:
            return error(404, "工单不存在")
        conv = await s.get_one(Conversation, handoff.conversation_id)
        identity = await s.get_one(ChannelIdentity, conv.channel_identity_id)
        if order.citizen_id != identity.citizen_id:
            return error(404, "工单不存在")
        await work_orders.add_note(s, order, text, f"agent:{session.username}")
    return web.json_response({"ok": True})


# --- bot-owned conversations an agent may take over --------------------------------------------


@requires("agent")
async def live_conversations(request: web.Request) -> web.Response:
    """`GET /console/api/conversations` → recent bot-owned conversations (last 30 minutes)."""
    since = utcnow() - timedelta(minutes=30)
    async with request.app[DB].session() as s:
        open_ids = select(Handoff.conversation_id).where(Handoff.state.in_(handoffs.OPEN_STATES))
        stmt = (
            select(Conversation, ChannelIdentity)
            .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
            .where(Conversation.last_message_at > since, Conversation.id.not_in(open_ids))
            .order_by(Conversation.last_message_at.desc())
            .limit(50)
        )
        rows = (await s.execute(stmt)).all()
        items = []
        for conv, identity in rows:
            last = (await conversations.history(s, conv.id, limit=1))[:1]
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
    """`POST /console/api/conversations/{id}/claim`: an agent takes over a bot-owned chat."""
    session = session_of(request)
    try:
        async with request.app[BUS].lock(f"conv-claim:{request.match_info['id']}", wait=5):
            async with request.app[DB].session() as s:
                conv = await conversations.conversation_by_public_id(s, request.match_info["id"])
                if conv is None:
                    return error(404, "会话不存在")
                handoff = await handoffs.request(
                    s,
                    conv,
                    "claimed",
                    {"claimed_by": session.username},
                    actor=f"agent:{session.username}",
                )
                agent = await s.get_one(Agent, session.agent_id)
                await assignment.claim(s, handoff, agent)
    except assignment.HandoffTaken as exc:
        return error(409, f"该会话已被处理（{exc.state}）")
    except LockTimeout:
        return error(503, "系统繁忙，请重试")
    await publish_handoff(request.app, handoff, "assigned")
    await tell_citizen(
        request.app, handoff.conversation_id, notice.agent_joined(session.display_name)
    )
    return await _summary_response(request, handoff)


# --- agents, presence, metrics -----------------------------------------------------------------


@requires("agent")
async def list_agents(request: web.Request) -> web.Response:
    """`GET /console/api/agents` → users with online state and load (for reassigning)."""
    async with request.app[DB].session() as s:
        load = await agents.loads(s)
        now = utcnow()
        items = [
            {
                **auth.agent_json(a),
                "online": agents.is_online(a, now),
                "load": load.get(a.id, 0),
                "active": a.active,
            }
            for a in await agents.all_agents(s)
        ]
    return web.json_response({"agents": items})


@requires("admin", write=True)
async def create_agent(request: web.Request) -> web.Response:
    """`POST /console/api/agents {"username","password","role","display_name"}`: admins only."""
    session = session_of(request)
    body = await _body(request) or {}
    username, password = body.get("username"), body.get("password")
    role, display_name = body.get("role", "agent"), body.get("display_name")
    if not isinstance(username, str) or not isinstance(password, str):
        return error(400, "请填写用户名和密码")
    if not isinstance(role, str) or not isinstance(display_name, str | None):
        return error(400, "角色或姓名格式错误")
    try:
        async with request.app[DB].session() as s:
            agent = await agents.create_agent(
                s, username, password, role=role, display_name=display_name
            )
            data = auth.agent_json(agent)
    except agents.AgentError as exc:
        return error(400, str(exc))
    await auth.audit(request, session.agent_id, "create_agent", f"agent:{data['username']}")
    return web.json_response({"agent": data}, status=201)


def _agent_id(request: web.Request) -> int | None:
    try:
        return int(request.match_info["id"])
    except ValueError:
        return None


@requires("admin", write=True)
async def set_agent_active(request: web.Request) -> web.Response:
    """`POST /console/api/agents/{id}/active {"active": false|true}`: admins deactivate or
    reactivate a user. A deactivated user cannot sign in and every session of theirs ends at
    once (open sockets close). Audited (`agent_deactivate` / `agent_activate`)."""
    session = session_of(request)
    active = (await _body(request) or {}).get("active")
    agent_id = _agent_id(request)
    if not isinstance(active, bool):
        return error(400, "请指定启用或停用")
    if agent_id == session.agent_id and not active:
        return error(400, "不能停用自己的账号")
    async with request.app[DB].session() as s:
        agent = await agents.set_active(s, agent_id, active) if agent_id else None
        if agent is None:
            return error(404, "坐席不存在")
        data = {**auth.agent_json(agent), "active": agent.active}
    if not active:
        await auth.revoke_sessions(request.app, data["id"])
    action = "agent_activate" if active else "agent_deactivate"
    await auth.audit(request, session.agent_id, action, f"agent:{data['username']}")
    return web.json_response({"agent": data})


@requires("admin", write=True)
async def reset_password(request: web.Request) -> web.Response:
    """`POST /console/api/agents/{id}/password {"password"}`: admins set a new password
    (argon2id); every session of that user ends. Audited (`password_reset`)."""
    session = session_of(request)
    password = (await _body(request) or {}).get("password")
    agent_id = _agent_id(request)
    if not isinstance(password, str):
        return error(400, "请填写新密码")
    try:
        async with request.app[DB].session() as s:
            agent = await agents.set_password(s, agent_id, password) if agent_id else None
            if agent is None:
                return error(404, "坐席不存在")
            data = auth.agent_json(agent)
    except agents.AgentError:
        return error(400, f"密码长度应为{agents.MIN_PASSWORD}到{agents.MAX_PASSWORD}个字符")
    await auth.revoke_sessions(request.app, data["id"])
    await auth.audit(request, session.agent_id, "password_reset", f"agent:{data['username']}")
    return web.json_response({"agent": data})


@requires("supervisor")
async def metrics_summary(request: web.Request) -> web.Response:
    """`GET /console/api/metrics?hours=24` → hand-off outcomes and mean durations."""
    try:
        hours = min(max(float(request.query.get("hours", "24")), 1), 24 * 90)
    except ValueError:
        return error(400, "hours 参数错误")
    async with request.app[DB].session() as s:
        data = await assignment.summary(s, utcnow() - timedelta(hours=hours))
    return web.json_response(data)


def routes() -> list[web.RouteDef]:
    """Every API route."""
    p = "/console/api"
    return [
        web.post(f"{p}/login", auth.login),
        web.post(f"{p}/logout", auth.logout),
        web.get(f"{p}/me", auth.me),
        web.get(f"{p}/handoffs", list_handoffs),
        web.get(f"{p}/handoffs/{{id}}", get_handoff),
        web.post(f"{p}/handoffs/{{id}}/claim", claim),
        web.post(f"{p}/handoffs/{{id}}/reassign", reassign),
        web.post(f"{p}/handoffs/{{id}}/reply", reply),
        web.post(f"{p}/handoffs/{{id}}/note", note),
        web.post(f"{p}/handoffs/{{id}}/return", return_to_bot),
        web.post(f"{p}/handoffs/{{id}}/close", close),
        web.post(f"{p}/messages/{{id}}/reveal", reveal),
        web.post(f"{p}/handoffs/{{id}}/context/reveal", reveal_context),
        web.get(f"{p}/categories", categories),
        web.post(f"{p}/handoffs/{{id}}/work-orders", create_order),
        web.post(f"{p}/handoffs/{{id}}/work-orders/{{tracking_no}}/note", note_order),
        web.get(f"{p}/conversations", live_conversations),
        web.post(f"{p}/conversations/{{id}}/claim", claim_conversation),
        web.get(f"{p}/agents", list_agents),
        web.post(f"{p}/agents", create_agent),
        web.post(f"{p}/agents/{{id}}/active", set_agent_active),
        web.post(f"{p}/agents/{{id}}/password", reset_password),
        web.get(f"{p}/metrics", metrics_summary),
    ]
