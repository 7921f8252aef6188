"""What a citizen (or the lookup page) may see of a work order: no internal ids, phone masked."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from store.crypto import PersonalDataCipher, mask_phone
from store.lifecycle import STATUS_LABELS
from store.models import WorkOrder

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
KIND_LABELS = {"report": "反映问题", "complain": "投诉", "suggest": "建议"}
EVENT_LABELS = {"supervision": "已督办", "delay": "延期说明", "rating": "市民评价", "note": "备注"}


@dataclass(frozen=True)
class TimelineItem:
    """One step of a work order's history as a citizen reads it."""

    at: datetime
    label: str
    note: str | None


@dataclass(frozen=True)
class WorkOrderView:
    """A work order as shown to its citizen."""

    tracking_no: str
    status: str
    status_label: str
    kind: str
    category_name: str | None
    department_name: str | None
    description: str
    location: str | None
    created_at: datetime
    response_due: datetime | None
    result_due: datetime | None
    delay_reason: str | None
    supervision: bool
    phone_masked: str | None
    timeline: list[TimelineItem]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (ISO timestamps)."""
        data = asdict(self)
        for key in ("created_at", "response_due", "result_due"):
            data[key] = data[key].isoformat() if data[key] else None
        data["timeline"] = [
            {"at": t.at.isoformat(), "label": t.label, "note": t.note} for t in self.timeline
        ]
        return data

    def summary_zh(self) -> str:
        """A short plain-Chinese status text for chat channels."""
        lines = [f"工单 {self.tracking_no}", f"当前状态：{self.status_label}"]
        if self.category_name:
            lines.append(f"问题类别：{self.category_name}")
        if self.department_name:
            lines.append(f"承办单位：{self.department_name}")
        if self.result_due and self.status not in ("resolved", "callback", "closed"):
            lines.append(f"办理时限：{local_date(self.result_due)}前")
        if self.delay_reason:
            lines.append(f"延期说明：{self.delay_reason}")
        if self.supervision:
            lines.append("该工单已超期，已启动督办。")
        if self.timeline:
            last = self.timeline[-1]
            lines.append(f"最近进展：{local_date(last.at)} {last.label}")
        return "\n".join(lines)


def local_date(at: datetime) -> str:
    """`2026年11月21日` in the hotline's time zone."""
    local = at.astimezone(LOCAL_TZ)
    return f"{local.year}年{local.month}月{local.day}日"


def view_of(order: WorkOrder, cipher: PersonalDataCipher) -> WorkOrderView:
    """Build the citizen's view; `order.events`, `category` and `department` must be loaded."""
    timeline = []
    for ev in order.events:
        if ev.kind == "transition" and ev.to_status:
            label = STATUS_LABELS.get(ev.to_status, ev.to_status)
        else:
            label = EVENT_LABELS.get(ev.kind, ev.kind)
        timeline.append(TimelineItem(at=ev.created_at, label=label, note=ev.note))
    phone = order.phone
    return WorkOrderView(
        tracking_no=order.tracking_no,
        status=order.status,
        status_label=STATUS_LABELS.get(order.status, order.status),
        kind=order.kind,
        category_name=order.category.name if order.category else None,
        department_name=order.department.name if order.department else None,
        description=order.description,
        location=order.location,
        created_at=order.created_at,
        response_due=order.response_due,
        result_due=order.result_due,
        delay_reason=order.delay_reason,
        supervision=order.supervision,
        phone_masked=mask_phone(phone) if phone else None,
        timeline=timeline,
    )
