"""Work orders in the console: file one for the citizen of a hand-off, move one along the
12345 loop, add a note, set a delay reason, reveal its contact data. Every write needs CSRF,
is checked against the role and the ownership rule (`bot.console.access`) and audited.

Who may do what (see docs/console.md):

* an agent, on the orders of a citizen they are serving (a hand-off assigned to them): add a
  note, record that the department started work (`in_progress`);
* a supervisor or admin, on every order: also 派单 `dispatched` (to a department), 退单
  `returned`, 办结 `resolved`, 重新办理 `reopened`, and the delay reason;
* nobody sets `callback` or `closed` here: the satisfaction callback and the citizen's rating
  drive those.

The lifecycle (`store.lifecycle`) decides what is possible from the current status; each step
writes a WorkOrderEvent and an outbox notice that the notifier pushes to the citizen.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console import forms
from bot.console.access import owned_handoff, owns
from bot.console.auth import ConsoleUser, requires, user_of
from bot.console.errors import Refused
from bot.console.live import tell_citizen
from bot.console.reveal import reveals
from bot.console.views import STEP_LABELS, order_json
from bot.keys import BUS, CIPHER, DB
from bot.messages import Reply
from store import agents, categories, conversations, lifecycle, tracking, work_orders
from store.errors import NotFound
from store.models import AuditLog, Conversation, WorkOrder, utcnow

AGENT_STEPS = frozenset({"in_progress"})
SUPERVISOR_STEPS = frozenset({"dispatched", "returned", "in_progress", "resolved", "reopened"})
NOTE_REQUIRED = {"returned": "请填写退单原因", "resolved": "请填写办理结果（将告知市民）"}
MAX_TEXT = forms.MAX_TEXT
NOT_FOUND = "工单不存在"
__all__ = ["Refused", "access", "console_order", "for_citizen", "routes", "steps_for"]


async def access(session: AsyncSession, user: ConsoleUser, order: WorkOrder) -> str | None:
    """The access level: `supervisor`, `agent` (owns a conversation of this citizen, see
    `bot.console.access.owns`) or None."""
    if agents.role_at_least(user.role, "supervisor"):
        return "supervisor"
    if order.citizen_id is not None and await owns(session, user, citizen_id=order.citizen_id):
        return "agent"
    return None


def steps_for(level: str | None, status: str) -> list[str]:
    """Statuses this user may move an order to from `status`, in the loop's order."""
    mine = {"supervisor": SUPERVISOR_STEPS, "agent": AGENT_STEPS}.get(level or "", frozenset())
    possible = lifecycle.allowed_next(status) & mine
    return [s for s in lifecycle.STATUSES if s in possible]


def console_order(order: WorkOrder, request: web.Request, level: str | None) -> dict[str, Any]:
    """The console's JSON of an order with what this user may do to it."""
    return order_json(
        order,
        request.app[CIPHER],
        flags=work_orders.deadline_flags(order, utcnow()),
        steps=steps_for(level, order.status),
        can_note=level is not None,
        can_delay=level == "supervisor" and order.status in lifecycle.OPEN_STATUSES,
        can_reveal=level is not None,
    )


async def for_citizen(
    request: web.Request, session: AsyncSession, user: ConsoleUser, citizen_id: int
) -> list[dict[str, Any]]:
    """The citizen's recent orders (masked) with what this user may do to each."""
    out = []
    for order in await work_orders.orders_for_citizen(session, citizen_id):
        out.append(console_order(order, request, await access(session, user, order)))
    return out


_body = forms.body
_text = forms.text


async def _change(request: web.Request, change) -> web.Response:
    """Run `change(session, order, level, body) -> audit (action, detail)` on the locked order
    in one transaction with its audit row; answer with the order as it is now. Refusals and
    store errors raised by `change` roll it back and are answered by `bot.console.errors`."""
    user = user_of(request)
    number = tracking.normalize(request.match_info["tracking_no"])
    if number is None:
        raise NotFound(NOT_FOUND)
    body = await _body(request)
    async with request.app[BUS].lock(f"work-order:{number}", ttl=10, wait=5):
        async with request.app[DB].session() as session:
            order = await work_orders.by_tracking_no(session, number, for_update=True)
            level = await access(session, user, order) if order else None
            if order is None or level is None:
                raise NotFound(NOT_FOUND)
            action, detail = await change(session, order, level, body)
            session.add(
                AuditLog(
                    agent_id=user.agent_id,
                    action=action,
                    target=f"work_order:{number}{detail}"[:128],
                )
            )
        async with request.app[DB].session() as session:
            order = await work_orders.by_tracking_no(session, number)
            level = await access(session, user, order)
            return web.json_response({"work_order": console_order(order, request, level)})


@requires("agent", write=True)
async def change_status(request: web.Request) -> web.Response:
    """`POST /console/api/work-orders/{tracking_no}/status {"to", "note"?, "department_code"?}`:
    one step of the loop. 403 when the role may not take that step, 409 when the lifecycle does
    not allow it from the current status (nothing changes); the citizen is told by the
    notifier."""
    username = user_of(request).username

    async def change(session: AsyncSession, order: WorkOrder, level: str, body: dict[str, Any]):
        to = body.get("to")
        if not isinstance(to, str) or to not in lifecycle.STATUSES:
            raise Refused(400, "请选择要变更的状态")
        if to not in SUPERVISOR_STEPS:
            raise Refused(400, "回访和评价完成由市民评价产生，不能在坐席台设置")
        if to not in (SUPERVISOR_STEPS if level == "supervisor" else AGENT_STEPS):
            raise Refused(403, "没有权限：派单、退单、办结和重新办理由班长操作")
        current = order.status
        if to not in lifecycle.allowed_next(current):
            label = lifecycle.STATUS_LABELS.get(current, current)
            raise Refused(
                409, f"工单当前为「{label}」，不能{STEP_LABELS.get(to, to)}，请刷新后重试"
            )
        note = _text(body, "note", required=NOTE_REQUIRED.get(to))
        department_id = None
        if to == "dispatched":
            code = _text(body, "department_code")
            if code:
                department = await work_orders.department_by_code(session, code)
                if department is None:
                    raise Refused(400, "承办单位不存在")
                department_id = department.id
            elif order.department_id is None:
                raise Refused(400, "请选择承办单位")
        await lifecycle.transition(
            session, order, to, f"agent:{username}", note, department_id=department_id
        )
        return "work_order_status", f":{current}->{to}"

    return await _change(request, change)


@requires("agent", write=True)
async def add_note(request: web.Request) -> web.Response:
    """`POST /console/api/work-orders/{tracking_no}/note {"text"}`: a note on the order's
    timeline (the citizen sees it when looking the order up)."""
    username = user_of(request).username

    async def change(session: AsyncSession, order: WorkOrder, level: str, body: dict[str, Any]):
        text = _text(body, "text", required="补充内容不能为空")
        await work_orders.add_note(session, order, text or "", f"agent:{username}")
        return "work_order_note", ""

    return await _change(request, change)


@requires("agent", write=True)
async def set_delay(request: web.Request) -> web.Response:
    """`POST /console/api/work-orders/{tracking_no}/delay {"reason"}`: supervisors only; the
    citizen is told and sees the reason in lookups."""
    username = user_of(request).username

    async def change(session: AsyncSession, order: WorkOrder, level: str, body: dict[str, Any]):
        if level != "supervisor":
            raise Refused(403, "没有权限：延期说明由班长填写")
        reason = _text(body, "reason", required="请填写延期原因")
        await work_orders.set_delay_reason(session, order, reason or "", f"agent:{username}")
        return "work_order_delay", ""

    return await _change(request, change)


async def _contact(
    request: web.Request, session: AsyncSession, user: ConsoleUser
) -> tuple[str, dict[str, Any]]:
    """`POST /console/api/work-orders/{tracking_no}/reveal` → contact name, phone, description
    and location unmasked; audited (`reveal work_order:<no>`)."""
    number = tracking.normalize(request.match_info["tracking_no"])
    order = await work_orders.by_tracking_no(session, number) if number else None
    if order is None or await access(session, user, order) is None:
        raise NotFound(NOT_FOUND)
    return str(number), {
        "tracking_no": number,
        "contact_name": order.contact_name,
        "phone": order.phone,
        "description": order.description,
        "location": order.location,
    }


reveal = reveals("work_order", _contact)


# --- filing for the citizen of a hand-off, and the form's choices ------------------------------


@requires("agent")
async def list_categories(request: web.Request) -> web.Response:
    """`GET /console/api/categories` → work-order categories for the form and departments
    (承办单位) to dispatch to, each as code and name."""
    async with request.app[DB].session() as session:
        rows = await categories.all_categories(session)
        departments = await categories.all_departments(session)
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
    user = user_of(request)
    body = await forms.body(request)
    fields = {
        k: body.get(k)
        for k in ("kind", "category_code", "description", "location", "contact_name", "phone")
    }
    if any(v is not None and not isinstance(v, str) for v in fields.values()):
        raise Refused(400, "字段格式错误")
    hid = request.match_info["id"]
    digest = hashlib.sha256(
        json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:24]
    async with request.app[DB].session() as session:
        handoff = await owned_handoff(session, user, hid)
        conv = await session.get_one(Conversation, handoff.conversation_id)
        order = await work_orders.create_work_order(
            session,
            request.app[CIPHER],
            conversation=conv,
            kind=fields["kind"] or "report",
            category_code=fields["category_code"] or None,
            description=fields["description"] or "",
            location=fields["location"],
            contact_name=fields["contact_name"],
            phone=fields["phone"] or "",
            actor=f"agent:{user.username}",
            idempotency_key=f"console:{hid}:{digest}",
        )
        tracking_no, conversation_id = order.tracking_no, conv.id
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
async def note_for_citizen(request: web.Request) -> web.Response:
    """`POST /console/api/handoffs/{id}/work-orders/{tracking_no}/note {"text"}`: add what the
    citizen said later to one of *their* work orders (an event on its timeline)."""
    user = user_of(request)
    text = forms.text(
        await forms.body(request), "text", required=f"补充内容不能为空，且不超过{MAX_TEXT}字"
    )
    async with request.app[DB].session() as session:
        handoff = await owned_handoff(session, user, request.match_info["id"])
        order = await work_orders.by_tracking_no(session, request.match_info["tracking_no"])
        conv = await session.get_one(Conversation, handoff.conversation_id)
        identity = await conversations.identity_of(session, conv)
        if order is None or order.citizen_id != identity.citizen_id:
            raise NotFound(NOT_FOUND)
        await work_orders.add_note(session, order, text or "", f"agent:{user.username}")
    return web.json_response({"ok": True})


def routes() -> list[web.RouteDef]:
    """The work-order routes of the console API."""
    p = "/console/api/work-orders/{tracking_no}"
    h = "/console/api/handoffs/{id}/work-orders"
    return [
        web.get("/console/api/categories", list_categories),
        web.post(h, create_order),
        web.post(f"{h}/{{tracking_no}}/note", note_for_citizen),
        web.post(f"{p}/status", change_status),
        web.post(f"{p}/note", add_note),
        web.post(f"{p}/delay", set_delay),
        web.post(f"{p}/reveal", reveal),
    ]
