"""JSON shapes the console shows. Every text leaves masked (phones, ID numbers, names in the
hand-off context and work orders); the browser renders it with textContent only."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.conversations import message_json
from store.crypto import PersonalDataCipher, mask_phone, mask_text
from store.models import Agent, ChannelIdentity, Conversation, Handoff, Message, utcnow

# Context keys whose whole value is personal data, whatever it looks like.
NAME_KEYS = frozenset({"name", "contact_name", "citizen_name", "real_name"})
PHONE_KEYS = frozenset({"phone", "mobile", "contact_phone", "telephone"})
ID_KEYS = frozenset({"id_number", "id_card", "id_no", "idcard"})
STEP_LABELS = {
    "dispatched": "派单",
    "returned": "退单",
    "in_progress": "开始办理",
    "resolved": "办结",
    "reopened": "重新办理",
}
KIND_LABELS = {"report": "反映问题", "complain": "投诉", "suggest": "建议"}


def masked_message(msg: Message | dict[str, Any]) -> dict[str, Any]:
    """A stored message as the console shows it: text masked, `masked` says if it changed."""
    data = dict(message_json(msg) if isinstance(msg, Message) else msg)
    text = data.get("text") or ""
    shown = mask_text(text)
    data["text"] = shown
    data["masked"] = shown != text
    return data


def mask_name(name: str) -> str:
    """王小明 → 王**."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def _mask_digits(value: str, keep_head: int) -> str:
    digits = re.sub(r"\D", "", value)
    if len(digits) < 7:
        return "*" * len(value)
    return digits[:keep_head] + "*" * (len(digits) - keep_head - 4) + digits[-4:]


def _mask_leaf(key: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_mask_leaf(key, v) for v in value]
    if not isinstance(value, str):
        return value
    if key in NAME_KEYS:
        return mask_name(value)
    if key in PHONE_KEYS:
        return _mask_digits(value, 3)
    if key in ID_KEYS:
        return _mask_digits(value, 6)
    return mask_text(value)


def _hidden_key(key: str) -> bool:
    """Bookkeeping keys (`_…`, `…_id`) never reach the console."""
    return key.startswith("_") or key.endswith("_id")


def masked_value(value: Any, key: str = "") -> Any:
    """Mask strings inside a JSON-like structure (form slots in the hand-off context): phone
    and ID numbers in any text, and whole values under name/phone/ID keys; keys for
    bookkeeping (`_…`, `…_id`) are left out."""
    if isinstance(value, dict):
        return {
            str(k): masked_value(v, str(k)) for k, v in value.items() if not _hidden_key(str(k))
        }
    if isinstance(value, list):
        return [masked_value(v, key) for v in value]
    return _mask_leaf(key, value)


def masked_paths(value: Any, path: tuple[str, ...] = ()) -> list[list[str]]:
    """Paths (dict keys from the top) of the context entries the console shows masked: a
    leaf or a whole list, as the page lists them. Each may be revealed (audited)."""
    if isinstance(value, dict):
        out: list[list[str]] = []
        for k, v in value.items():
            if not _hidden_key(str(k)):
                out.extend(masked_paths(v, (*path, str(k))))
        return out
    key = path[-1] if path else ""
    return [list(path)] if path and masked_value(value, key) != value else []


class NoSuchEntry(LookupError):
    """The path names nothing the console shows."""


def context_entry(context: dict[str, Any] | None, path: Iterable[Any]) -> Any:
    """The unmasked value at `path` (dict keys only, bookkeeping keys refused)."""
    value: Any = context or {}
    keys = list(path)
    if not keys:
        raise NoSuchEntry("empty path")
    for key in keys:
        if not isinstance(key, str) or _hidden_key(key) or not isinstance(value, dict):
            raise NoSuchEntry(str(key))
        if key not in value:
            raise NoSuchEntry(key)
        value = value[key]
    if isinstance(value, dict):
        raise NoSuchEntry("not a single entry")
    return _visible(value)


def _visible(value: Any) -> Any:
    """`value` without bookkeeping keys (inside lists of dicts)."""
    if isinstance(value, dict):
        return {str(k): _visible(v) for k, v in value.items() if not _hidden_key(str(k))}
    if isinstance(value, list):
        return [_visible(v) for v in value]
    return value


def order_json(
    order: Any,
    cipher: PersonalDataCipher,
    *,
    flags: dict[str, bool],
    steps: Iterable[str] = (),
    can_note: bool = False,
    can_delay: bool = False,
    can_reveal: bool = False,
) -> dict[str, Any]:
    """A work order as the console shows it: description, notes and contact masked, the
    deadlines with their overdue flags, and what this user may do next (`steps` are the
    statuses offered, already limited to what the lifecycle allows from the current one).
    `order.events`, `category` and `department` must be loaded."""
    from store.lifecycle import STATUS_LABELS

    phone = order.phone or ""
    name = order.contact_name or ""
    description = mask_text(order.description or "")
    location = mask_text(order.location) if order.location else None
    timeline = [
        {
            "at": ev.created_at.isoformat(),
            "kind": ev.kind,
            "label": (
                STATUS_LABELS.get(ev.to_status, ev.to_status)
                if ev.kind == "transition" and ev.to_status
                else {"note": "补充说明", "delay": "延期说明", "supervision": "督办"}.get(
                    ev.kind, ev.kind
                )
            ),
            "actor": ev.actor,
            "note": mask_text(ev.note) if ev.note else None,
        }
        for ev in order.events
    ]
    return {
        "tracking_no": order.tracking_no,
        "status": order.status,
        "status_label": STATUS_LABELS.get(order.status, order.status),
        "kind_label": KIND_LABELS.get(order.kind, order.kind),
        "category": order.category.name if order.category else None,
        "department": order.department.name if order.department else None,
        "description": description,
        "location": location,
        "contact_name": mask_name(name) if name else None,
        "phone": mask_phone(phone) if phone else None,
        "masked": bool(phone or name)
        or description != (order.description or "")
        or location != order.location,
        "created_at": order.created_at.isoformat(),
        "response_due": order.response_due.isoformat() if order.response_due else None,
        "result_due": order.result_due.isoformat() if order.result_due else None,
        **flags,
        "supervision": order.supervision,
        "delay_reason": mask_text(order.delay_reason) if order.delay_reason else None,
        "timeline": timeline,
        "next": [{"status": s, "label": STEP_LABELS.get(s, s)} for s in steps],
        "can_note": can_note,
        "can_delay": can_delay,
        "can_reveal": can_reveal,
    }


async def handoff_summary(
    session: AsyncSession, handoff: Handoff, now: datetime | None = None
) -> dict[str, Any]:
    """One row of the queue."""
    now = now or utcnow()
    conv = await session.get_one(Conversation, handoff.conversation_id)
    identity = await session.get_one(ChannelIdentity, conv.channel_identity_id)
    agent = await session.get(Agent, handoff.agent_id) if handoff.agent_id else None
    last = (
        await session.execute(
            select(Message)
            .where(Message.conversation_id == conv.id, Message.sender == "citizen")
            .order_by(Message.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    end = handoff.ended_at or now
    return {
        "id": handoff.public_id,
        "conversation": conv.public_id,
        "channel": identity.channel,
        "citizen": identity.display_name or f"{identity.channel}访客",
        "state": handoff.state,
        "reason": handoff.reason,
        "agent": (
            {"id": agent.id, "display_name": agent.display_name, "username": agent.username}
            if agent
            else None
        ),
        "created_at": handoff.created_at.isoformat(),
        "assigned_at": handoff.assigned_at.isoformat() if handoff.assigned_at else None,
        "waiting_seconds": int(((handoff.assigned_at or end) - handoff.created_at).total_seconds()),
        "last_text": mask_text(last.text)[:80] if last else "",
    }
