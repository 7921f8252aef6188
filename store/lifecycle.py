"""The 12345 work-order loop as one explicit state machine.

received 受理 → dispatched 派单 → (returned 退单 → dispatched) → in_progress 办理中 →
resolved 办结 → callback 回访 → closed 评价完成; reopened from callback or closed, then
dispatched again. Every transition writes one WorkOrderEvent and one outbox row in the same
transaction; an invalid transition raises and changes nothing.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import InvalidTransition
from store.models import WorkOrder, WorkOrderEvent, utcnow
from store.outbox import WORK_ORDER_STATUS, emit, seal_note

STATUSES = (
    "received",
    "dispatched",
    "returned",
    "in_progress",
    "resolved",
    "callback",
    "closed",
    "reopened",
)
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"dispatched"}),
    "dispatched": frozenset({"in_progress", "returned"}),
    "returned": frozenset({"dispatched"}),
    "in_progress": frozenset({"resolved"}),
    "resolved": frozenset({"callback"}),
    "callback": frozenset({"closed", "reopened"}),
    "closed": frozenset({"reopened"}),
    "reopened": frozenset({"dispatched"}),
}
# What a citizen reads.
STATUS_LABELS: dict[str, str] = {
    "received": "已受理",
    "dispatched": "已派单",
    "returned": "退单重派中",
    "in_progress": "办理中",
    "resolved": "已办结",
    "callback": "回访中",
    "closed": "已办结（已评价）",
    "reopened": "已重新办理",
}
OPEN_STATUSES = frozenset({"received", "dispatched", "returned", "in_progress", "reopened"})


def allowed_next(status: str) -> frozenset[str]:
    """Statuses reachable in one step from `status`."""
    return TRANSITIONS.get(status, frozenset())


async def transition(
    session: AsyncSession,
    order: WorkOrder,
    to_status: str,
    actor: str,
    note: str | None = None,
    *,
    department_id: int | None = None,
) -> WorkOrderEvent:
    """Move `order` to `to_status`, recording who did it and why."""
    from_status = order.status
    if to_status not in allowed_next(from_status):
        raise InvalidTransition(from_status, to_status)
    order.status = to_status
    order.updated_at = utcnow()
    if department_id is not None:
        order.department_id = department_id
    event = WorkOrderEvent(
        work_order_id=order.id,
        kind="transition",
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        note=note,
    )
    session.add(event)
    await session.flush()
    notify(session, order, to_status, note, actor)
    return event


def notify(
    session: AsyncSession, order: WorkOrder, what: str, note: str | None, actor: str = "system"
) -> None:
    """Queue a citizen notification about `order` (a status or 'delay'/'supervision')."""
    payload = {
        "tracking_no": order.tracking_no,
        "work_order_id": order.id,
        "citizen_id": order.citizen_id,
        "status": order.status,
        "what": what,
        "actor": actor,
    }
    seal_note(payload, note, session.info.get("cipher"))  # free text: never in clear
    emit(session, WORK_ORDER_STATUS, payload)
