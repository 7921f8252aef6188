"""Work-order repository: create (idempotent), find, list, note, delay, deadlines, supervise,
rate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store import lifecycle
from store.crypto import PersonalDataCipher, normalize_mobile
from store.errors import InvalidWorkOrder
from store.models import (
    Category,
    ChannelIdentity,
    Conversation,
    Department,
    Rating,
    WorkOrder,
    WorkOrderEvent,
    utcnow,
)
from store.tracking import new_tracking_no
from store.workdays import add_working_days

KINDS = ("report", "complain", "suggest")
SCORES = ("satisfied", "basically_satisfied", "unsatisfied")
SCORE_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}


def _loaded() -> list:
    return [
        selectinload(WorkOrder.events),
        selectinload(WorkOrder.category),
        selectinload(WorkOrder.department),
    ]


async def create_work_order(
    session: AsyncSession,
    cipher: PersonalDataCipher,
    *,
    conversation: Conversation | None,
    kind: str,
    category_code: str | None,
    description: str,
    location: str | None,
    contact_name: str | None,
    phone: str,
    actor: str,
    idempotency_key: str | None,
    now: datetime | None = None,
) -> WorkOrder:
    """File a work order (status `received`) with its deadlines; the same key returns the same
    order, so a retried action call or a double-clicked button creates one order."""
    if idempotency_key:
        existing = await _by_idempotency_key(session, idempotency_key)
        if existing is not None:
            return existing
    mobile = normalize_mobile(phone)
    if mobile is None:
        raise InvalidWorkOrder("手机号码格式不正确")
    if kind not in KINDS:
        raise InvalidWorkOrder("工单类型不正确")
    description = (description or "").strip()
    if not description:
        raise InvalidWorkOrder("请描述您反映的问题")
    now = now or utcnow()
    category = await _category(session, category_code)
    identity_id, citizen_id = None, None
    if conversation is not None:
        identity = await session.get_one(ChannelIdentity, conversation.channel_identity_id)
        identity_id, citizen_id = identity.id, identity.citizen_id
    phone_hash = cipher.keyed_hash(mobile)
    order = WorkOrder(
        tracking_no=new_tracking_no(now.date()),
        idempotency_key=idempotency_key,
        status="received",
        kind=kind,
        category_id=category.id if category else None,
        department_id=category.department_id if category else None,
        citizen_id=citizen_id,
        channel_identity_id=identity_id,
        description=description[:4000],
        location=(location or "").strip()[:500] or None,
        contact_name=contact_name.strip() if contact_name else None,
        phone=mobile,
        phone_hash=phone_hash,
        response_due=add_working_days(now, category.response_days if category else 2),
        result_due=add_working_days(now, category.result_days if category else 15),
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(order)
            await session.flush()
    except IntegrityError:
        if idempotency_key:
            existing = await _by_idempotency_key(session, idempotency_key)
            if existing is not None:
                return existing
        raise
    session.add(
        WorkOrderEvent(work_order_id=order.id, kind="transition", actor=actor, to_status="received")
    )
    # The phone stays on the order (lookup by its last 4 digits) and is never used to link
    # citizens: a number typed into a form proves nothing (see store/phone_verification.py).
    await session.flush()
    return await by_id(session, order.id)


async def _category(session: AsyncSession, code: str | None) -> Category | None:
    if not code:
        return None
    return (
        await session.execute(select(Category).where(Category.code == code))
    ).scalar_one_or_none()


async def _by_idempotency_key(session: AsyncSession, key: str) -> WorkOrder | None:
    stmt = select(WorkOrder.id).where(WorkOrder.idempotency_key == key)
    found = (await session.execute(stmt)).scalar_one_or_none()
    return await by_id(session, found) if found is not None else None


async def by_id(session: AsyncSession, order_id: int) -> WorkOrder:
    """An order with its events, category and department loaded."""
    stmt = select(WorkOrder).where(WorkOrder.id == order_id).options(*_loaded())
    stmt = stmt.execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


async def by_tracking_no(
    session: AsyncSession, tracking_no: str, *, for_update: bool = False
) -> WorkOrder | None:
    """An order by its (normalised) tracking number; `for_update` locks the row on PostgreSQL."""
    stmt = select(WorkOrder).where(WorkOrder.tracking_no == tracking_no).options(*_loaded())
    if for_update:
        stmt = stmt.with_for_update(of=WorkOrder)
    return (await session.execute(stmt)).scalar_one_or_none()


async def orders_for_citizen(
    session: AsyncSession, citizen_id: int, limit: int = 10
) -> Sequence[WorkOrder]:
    """A citizen's most recent orders (from every linked channel)."""
    stmt = (
        select(WorkOrder)
        .where(WorkOrder.citizen_id == citizen_id)
        .options(*_loaded())
        .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def open_orders(session: AsyncSession, limit: int = 200) -> Sequence[WorkOrder]:
    """Orders still being handled, 督办 first, then by result deadline (soonest first)."""
    stmt = (
        select(WorkOrder)
        .where(WorkOrder.status.in_(lifecycle.OPEN_STATUSES))
        .options(*_loaded())
        .order_by(
            WorkOrder.supervision.desc(),
            WorkOrder.result_due.is_(None),
            WorkOrder.result_due,
            WorkOrder.id,
        )
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def department_by_code(session: AsyncSession, code: str) -> Department | None:
    """A department (承办单位) by its code."""
    stmt = select(Department).where(Department.code == code)
    return (await session.execute(stmt)).scalar_one_or_none()


def deadline_flags(order: WorkOrder, now: datetime | None = None) -> dict[str, bool]:
    """Whether an open order missed its response deadline (no department has started work,
    i.e. it never reached `in_progress`) or its result deadline; `order.events` must be
    loaded."""
    now = now or utcnow()
    is_open = order.status in lifecycle.OPEN_STATUSES
    responded = any(e.to_status == "in_progress" for e in order.events)
    return {
        "response_overdue": bool(
            is_open and not responded and order.response_due and order.response_due < now
        ),
        "result_overdue": bool(is_open and order.result_due and order.result_due < now),
    }


async def add_note(session: AsyncSession, order: WorkOrder, text: str, actor: str) -> None:
    """A note on the order's timeline (what the citizen added later, what the department
    said); the citizen sees it when looking the order up, no message is pushed."""
    text = (text or "").strip()
    if not text:
        raise InvalidWorkOrder("补充内容不能为空")
    session.add(WorkOrderEvent(work_order_id=order.id, kind="note", actor=actor, note=text[:2000]))
    await session.flush()


async def set_delay_reason(
    session: AsyncSession, order: WorkOrder, reason: str, actor: str
) -> None:
    """Record why an open order takes longer; the citizen sees it in lookups and is told."""
    reason = (reason or "").strip()[:500]
    if not reason:
        raise InvalidWorkOrder("请填写延期原因")
    if order.status not in lifecycle.OPEN_STATUSES:
        raise InvalidWorkOrder("工单已办结，无需延期说明")
    order.delay_reason = reason
    session.add(WorkOrderEvent(work_order_id=order.id, kind="delay", actor=actor, note=reason))
    await session.flush()
    lifecycle.notify(session, order, "delay", reason, actor)


async def flag_overdue(session: AsyncSession, now: datetime | None = None) -> list[str]:
    """Flag open orders past their result deadline for 督办; returns their tracking numbers."""
    now = now or utcnow()
    stmt = select(WorkOrder).where(
        WorkOrder.status.in_(lifecycle.OPEN_STATUSES),
        WorkOrder.supervision.is_(False),
        WorkOrder.result_due < now,
    )
    flagged = []
    for order in (await session.execute(stmt)).scalars():
        order.supervision = True
        session.add(
            WorkOrderEvent(
                work_order_id=order.id,
                kind="supervision",
                actor="system",
                note="超过办理时限，已转督办",
            )
        )
        flagged.append(order.tracking_no)
        lifecycle.notify(session, order, "supervision", None)
    await session.flush()
    return flagged


async def rate(
    session: AsyncSession, order: WorkOrder, score: str, actor: str, comment: str | None = None
) -> WorkOrder:
    """The citizen's 评价 after 办结; 不满意 reopens the order."""
    if score not in SCORES:
        raise InvalidWorkOrder("评价选项不正确")
    if order.status == "resolved":
        await lifecycle.transition(session, order, "callback", "system", "回访：请市民评价")
    if order.status != "callback":
        raise lifecycle.InvalidTransition(order.status, "closed")
    session.add(Rating(work_order_id=order.id, score=score, comment=comment))
    session.add(
        WorkOrderEvent(work_order_id=order.id, kind="rating", actor=actor, note=SCORE_LABELS[score])
    )
    if score == "unsatisfied":
        await lifecycle.transition(session, order, "reopened", actor, "市民不满意，工单重新办理")
    else:
        await lifecycle.transition(session, order, "closed", actor, SCORE_LABELS[score])
    return await by_id(session, order.id)
