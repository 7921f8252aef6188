"""Work orders in the console: move one along the 12345 loop, add a note, set a delay reason,
reveal its contact data. Every write needs CSRF, is checked against the role and audited.

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

import json
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.auth import ConsoleSession, audit, error, requires, session_of
from bot.console.views import STEP_LABELS, order_json
from bot.keys import BUS, CIPHER, DB
from store import agents, lifecycle, tracking, work_orders
from store.bus import LockTimeout
from store.models import AuditLog, ChannelIdentity, Conversation, Handoff, WorkOrder, utcnow

AGENT_STEPS = frozenset({"in_progress"})
SUPERVISOR_STEPS = frozenset({"dispatched", "returned", "in_progress", "resolved", "reopened"})
NOTE_REQUIRED = {"returned": "请填写退单原因", "resolved": "请填写办理结果（将告知市民）"}
MAX_TEXT = 2000
NOT_FOUND = "工单不存在"


class Refused(Exception):
    """Stop a change inside its transaction (nothing is written) and answer with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def serving(s: AsyncSession, agent_id: int, citizen_id: int | None) -> bool:
    """True if the agent has an assigned hand-off with this citizen (on any linked channel)."""
    if citizen_id is None:
        return False
    stmt = (
        select(Handoff.id)
        .join(Conversation, Handoff.conversation_id == Conversation.id)
        .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
        .where(
            Handoff.state == "assigned",
            Handoff.agent_id == agent_id,
            ChannelIdentity.citizen_id == citizen_id,
        )
        .limit(1)
    )
    return (await s.execute(stmt)).first() is not None


async def access(s: AsyncSession, session: ConsoleSession, order: WorkOrder) -> str | None:
    """The access level: `supervisor`, `agent` (serving this citizen) or None."""
    if agents.role_at_least(session.role, "supervisor"):
        return "supervisor"
    if await serving(s, session.agent_id, order.citizen_id):
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


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refused(400, "请求格式错误") from None
    if not isinstance(body, dict):
        raise Refused(400, "请求格式错误")
    return body


def _text(body: dict[str, Any], key: str, *, required: str | None = None) -> str | None:
    value = body.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Refused(400, required)
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise Refused(400, f"内容格式错误或超过{MAX_TEXT}字")
    return value.strip()


async def _change(request: web.Request, change) -> web.Response:
    """Run `change(s, order, level, body) -> audit (action, detail)` on the locked order in one
    transaction with its audit row; answer with the order as it is now."""
    session = session_of(request)
    number = tracking.normalize(request.match_info["tracking_no"])
    try:
        if number is None:
            raise Refused(404, NOT_FOUND)
        body = await _body(request)
        async with request.app[BUS].lock(f"work-order:{number}", ttl=10, wait=5):
            async with request.app[DB].session() as s:
                order = await work_orders.by_tracking_no(s, number, for_update=True)
                level = await access(s, session, order) if order else None
                if order is None or level is None:
                    raise Refused(404, NOT_FOUND)
                action, detail = await change(s, order, level, body)
                s.add(
                    AuditLog(
                        agent_id=session.agent_id,
                        action=action,
                        target=f"work_order:{number}{detail}"[:128],
                    )
                )
            async with request.app[DB].session() as s:
                order = await work_orders.by_tracking_no(s, number)
                level = await access(s, session, order)
                return web.json_response({"work_order": console_order(order, request, level)})
    except Refused as exc:
        return error(exc.status, exc.message)
    except work_orders.InvalidWorkOrder as exc:
        return error(400, str(exc))
    except LockTimeout:
        return error(503, "系统繁忙，请重试")


@requires("agent", write=True)
async def change_status(request: web.Request) -> web.Response:
    """`POST /console/api/work-orders/{tracking_no}/status {"to", "note"?, "department_code"?}`:
    one step of the loop. 403 when the role may not take that step, 409 when the lifecycle does
    not allow it from the current status (nothing changes); the citizen is told by the
    notifier."""
    username = session_of(request).username

    async def change(s: AsyncSession, order: WorkOrder, level: str, body: dict[str, Any]):
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
                department = await work_orders.department_by_code(s, code)
                if department is None:
                    raise Refused(400, "承办单位不存在")
                department_id = department.id
            elif order.department_id is None:
                raise Refused(400, "请选择承办单位")
        await lifecycle.transition(
            s, order, to, f"agent:{username}", note, department_id=department_id
        )
        return "work_order_status", f":{current}->{to}"

    return await _change(request, change)


@requires("agent", write=True)
async def add_note(request: web.Request) -> web.Response:
    """`POST /console/api/work-orders/{tracking_no}/note {"text"}`: a note on the order's
    timeline (the citizen sees it when looking the order up)."""
    username = session_of(request).username

    async def change(s: AsyncSession, order: WorkOrder, level: str, body: dict[str, Any]):
        text = _text(body, "text", required="补充内容不能为空")
        await work_orders.add_note(s, order, text or "", f"agent:{username}")
        return "work_order_note", ""

    return await _change(request, change)


@requires("agent", write=True)
async def set_delay(request: web.Request) -> web.Response:
    """`POST /console/api/work-orders/{tracking_no}/delay {"reason"}`: supervisors only; the
    citizen is told and sees the reason in lookups."""
    username = session_of(request).username

    async def change(s: AsyncSession, order: WorkOrder, level: str, body: dict[str, Any]):
        if level != "supervisor":
            raise Refused(403, "没有权限：延期说明由班长填写")
        reason = _text(body, "reason", required="请填写延期原因")
        await work_orders.set_delay_reason(s, order, reason or "", f"agent:{username}")
        return "work_order_delay", ""

    return await _change(request, change)


@requires("agent", write=True)
async def reveal(request: web.Request) -> web.Response:
    """`POST /console/api/work-orders/{tracking_no}/reveal` → contact name, phone, description
    and location unmasked; audited (`reveal work_order:<no>`)."""
    session = session_of(request)
    number = tracking.normalize(request.match_info["tracking_no"])
    if number is None:
        return error(404, NOT_FOUND)
    async with request.app[DB].session() as s:
        order = await work_orders.by_tracking_no(s, number)
        if order is None or await access(s, session, order) is None:
            return error(404, NOT_FOUND)
        data = {
            "tracking_no": number,
            "contact_name": order.contact_name,
            "phone": order.phone,
            "description": order.description,
            "location": order.location,
        }
    await audit(request, session.agent_id, "reveal", f"work_order:{number}")
    return web.json_response(data)


def routes() -> list[web.RouteDef]:
    """The work-order routes of the console API."""
    p = "/console/api/work-orders/{tracking_no}"
    return [
        web.post(f"{p}/status", change_status),
        web.post(f"{p}/note", add_note),
        web.post(f"{p}/delay", set_delay),
        web.post(f"{p}/reveal", reveal),
    ]
