"""Work-order lookup: tracking number + last 4 phone digits (or the identity that filed it)."""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import HUMAN_BUTTON, StoreAction, button, entity_value, latest_text
from store import tracking
from store.views import WorkOrderView, local_date

log = logging.getLogger(__name__)

# Something that looks like a tracking number, even with a wrong check character.
_NUMBER_LIKE = re.compile(r"12345[\s\-－—_]*\d{8}[\s\-－—_]*[0-9A-Za-z]{6,12}")
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d[\s-]?\d{4}[\s-]?(\d{4})(?!\d)")
_LAST4 = re.compile(r"(?<![\dA-Za-z])(\d{4})(?![\dA-Za-z])")

NOT_FOUND = "未查到与该编号和手机号后4位相符的工单，请核对工单编号和手机号后4位后再试。"
BAD_NUMBER = (
    "这个工单编号好像不对（校验位不符），请核对后重新发送。编号格式如 12345-20261121-XXXXXXXXX。"
)
REFUSED = "查询次数过多，为保护信息安全，请15分钟后再试，或转人工客服。"
# The per-number limit (up to 24 h): no false "15 minutes", and nothing about the number.
NUMBER_CLOSED = (
    "该工单编号的查询尝试次数过多，为保护信息安全，暂停凭手机号后4位查询，请稍后再试。"
    "您也可以在提交工单时使用的渠道直接查询，或转人工客服。"
)
ASK_NUMBER = "请发送工单编号（格式如 12345-20261121-XXXXXXXXX），我帮您查询办理进度。"
ASK_LAST4 = "为保护您的信息，请输入登记工单时所留手机号码的后4位。"


def number_candidate(tracker: Tracker, text: str) -> str | None:
    """The raw tracking number the citizen gave in this message, if any."""
    value = entity_value(tracker, "tracking_no")
    if value:
        return str(value)
    found = tracking.find_in_text(text)
    if found:
        return found
    match = _NUMBER_LIKE.search(text)
    return match.group(0) if match else None


def last4_in(text: str) -> str | None:
    """The last 4 phone digits in free text (a full mobile number counts too)."""
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    text = _NUMBER_LIKE.sub(" ", text)
    mobile = _MOBILE.search(text)
    if mobile:
        return mobile.group(1)
    matches = _LAST4.findall(text)
    return matches[-1] if matches else None


def describe(view: WorkOrderView) -> str:
    """Status, department, deadlines, delay reason and the timeline in plain Chinese."""
    lines = [view.summary_zh()]
    if view.response_due and view.status in ("received", "dispatched", "returned"):
        lines.append(f"响应时限：{local_date(view.response_due)}前联系您")
    if len(view.timeline) > 1:
        lines.append("办理记录：")
        for item in view.timeline[-5:]:
            note = f"（{item.note}）" if item.note else ""
            lines.append(f"· {local_date(item.at)} {item.label}{note}")
    return "\n".join(lines)


class ActionLookupWorkOrder(StoreAction):
    """Answer 查询工单: ask for what is missing, never reveal whether a number exists."""

    def name(self) -> str:
        return "action_lookup_work_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text = latest_text(tracker)
        raw = number_candidate(tracker, text)
        pending = bool(tracker.get_slot("lookup_pending"))
        if raw is None and pending:
            raw = tracker.get_slot("tracking_no")
        if raw is None:
            dispatcher.utter_message(text=ASK_NUMBER)
            return [SlotSet("lookup_pending", True), SlotSet("tracking_no", None)]
        number = tracking.normalize(raw)
        if number is None:
            dispatcher.utter_message(text=BAD_NUMBER)
            return [SlotSet("lookup_pending", True), SlotSet("tracking_no", None)]
        last4 = None if text.startswith("/") else last4_in(text)
        try:
            result = await self.store.lookup(
                tracking_no=number, phone_last4=last4, sender_id=tracker.sender_id
            )
        except Exception:
            log.exception("lookup failed")
            dispatcher.utter_message(text="抱歉，查询暂时不可用，请稍后再试。")
            return [SlotSet("lookup_pending", False)]
        if result.refused:
            refusal = NUMBER_CLOSED if result.number_closed else REFUSED
            dispatcher.utter_message(text=refusal, buttons=[HUMAN_BUTTON])
            return [SlotSet("lookup_pending", False), SlotSet("tracking_no", None)]
        if result.malformed:
            dispatcher.utter_message(text=BAD_NUMBER)
            return [SlotSet("lookup_pending", True), SlotSet("tracking_no", None)]
        if result.needs_phone:
            dispatcher.utter_message(text=ASK_LAST4)
            return [SlotSet("lookup_pending", True), SlotSet("tracking_no", number)]
        if result.order is None:
            dispatcher.utter_message(text=NOT_FOUND)
            return [SlotSet("lookup_pending", True), SlotSet("tracking_no", number)]
        dispatcher.utter_message(text=describe(result.order))
        return [SlotSet("lookup_pending", False), SlotSet("tracking_no", number)]


class ActionMyWorkOrders(StoreAction):
    """List the orders filed by this citizen (any linked channel)."""

    def name(self) -> str:
        return "action_my_work_orders"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        try:
            orders = await self.store.my_work_orders(tracker.sender_id)
        except Exception:
            log.exception("listing work orders failed")
            dispatcher.utter_message(text="抱歉，查询暂时不可用，请稍后再试。")
            return []
        if not orders:
            dispatcher.utter_message(
                text="暂未查到您在本渠道提交的工单。如有工单编号，可直接发送编号查询。"
            )
            return []
        lines = [f"您共有{len(orders)}件工单（最多显示10件）："]
        for view in orders[:10]:
            lines.append(
                f"· {view.tracking_no}｜{view.status_label}｜{view.category_name or '未分类'}"
                f"｜{local_date(view.created_at)}"
            )
        dispatcher.utter_message(
            text="\n".join(lines),
            buttons=[
                button(
                    f"查看 {v.tracking_no[-9:]}",
                    f'/check_status{{"tracking_no":"{v.tracking_no}"}}',
                )
                for v in orders[:3]
            ],
        )
        return []
