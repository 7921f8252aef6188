"""The work-order intake form: description, category (proposed), location, name, phone and
the confirmation of a summary (slot `wo_confirmed`); idempotent submission, cancel at any point.

Ask only for what is missing: when a description arrives (from the first message or as the
answer to the description question), the place, the citizen's name and mobile found in it
(store.intake) fill the empty slots, and a category the classifier is sure of fills
`category`; the form then asks only for the rest. Everything filled that way is shown in the
summary, which offers one button per field to correct it (修改地点 …) or takes a typed
correction ("地点改为幸福路12号").

The confirmation is the form's last required slot: only 确认 files the order, 取消 (the cancel
intent) drops it, a correction clears or replaces one field, and anything else asks the
summary question again."""

from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.common import (
    HUMAN_BUTTON,
    StoreAction,
    button,
    entity_value,
    is_payload,
    latest_intent,
    latest_text,
    latest_user_timestamp,
)
from store.client import StoreClient
from store.crypto import mask_phone, normalize_mobile
from store.intake import extract_fields
from store.views import KIND_LABELS, local_date

log = logging.getLogger(__name__)

FORM_SLOTS = (
    "description",
    "category",
    "category_proposed",
    "category_choices_shown",
    "location",
    "contact_name",
    "phone",
    "work_order_kind",
    "wo_confirmed",
)
KIND_BY_INTENT = {
    "report_problem": "report",
    "complain": "complain",
    "suggest": "suggest",
    "leave_message": "report",
}
INTRO = {
    "report": "好的，我来帮您登记反映的问题。",
    "complain": "好的，我来帮您登记投诉。",
    "suggest": "好的，我来帮您登记建议。",
}
MIN_DESCRIPTION = 8
# Words that only say what the citizen wants to do, not what happened.
_TRIGGER_WORDS = re.compile(
    r"我要|我想|想要|帮我|请|一下|反映|反应|投诉|举报|建议|提个|提点|意见|留言|登记|工单|"
    r"问题|情况|事情|个|[，。,.!！?？\s]"
)
_NAME_PREFIX = re.compile(r"^(我叫|我是|我姓|姓名[:：]?|名字[:：]?|叫我)")
EXIT_INTENTS = ("cancel", "request_human")
FORM_NAME = "work_order_form"
CONFIRM_SLOT = "wo_confirmed"
# Typed answers to the summary that mean 确认 even when NLU is unsure (punctuation ignored).
CONFIRM_WORDS = frozenset(
    "确认 确认提交 提交 确定 确定提交 确认无误 无误 没问题 是 是的 对 对的 好 好的 可以 ok".split()
)
_PUNCTUATION = re.compile(r"[\s，。,.!！?？~～、]+")
# One button per field the citizen may correct in the summary; the payload is plain text, read
# by `parse_correction` whatever intent NLU gives it.
FIELD_LABELS = {
    "category": "类别",
    "location": "地点",
    "contact_name": "联系人",
    "phone": "手机",
}
CONFIRM_BUTTONS = [
    button("确认提交", "/affirm"),
    *(button(f"修改{label}", f"修改{label}") for label in FIELD_LABELS.values()),
    button("取消", "/cancel"),
]
_FIELD_WORDS = {
    "category": "类别|分类|问题类别",
    "location": "地点|地址|位置|事发地点|发生地点",
    "contact_name": "联系人|姓名|名字|称呼",
    "phone": "手机号码|手机号|手机|电话号码|联系电话|电话|号码",
}
_CORRECTION = re.compile(
    r"^(?:请|麻烦)?(?:帮我)?(?P<verb>修改|更改|更正|改一下|改下|改)?(?:一下)?(?:我的|我)?"
    r"(?P<field>" + "|".join(f"(?P<{slot}>{words})" for slot, words in _FIELD_WORDS.items()) + ")"
    r"(?P<wrong>不对|错了|有误|写错了|填错了|要改|需要修改|修改一下|改一下)?[，,:：\s]*"
    r"(?:(?:改为|改成|应该是|应为|换成|是|为)[:：\s]*(?P<value>.+))?$"
)
CHOOSE = "?"  # extracted when the citizen wants the full category list


def substantive_length(text: str) -> int:
    """Length of a message once the bare 'I want to complain' words are removed."""
    return len(_TRIGGER_WORDS.sub("", text))


def parse_correction(text: str) -> tuple[str, str | None] | None:
    """(slot, new value or None) when the answer to the summary corrects one field.

    "修改地点" / "地址不对" → ("location", None): the form asks for it again;
    "手机号改为13812345678" → ("phone", "13812345678"): replaced, then validated as usual.
    """
    text = text.strip().rstrip("。.!！")
    match = _CORRECTION.match(text)
    if not match:
        return None
    slot = next(s for s in _FIELD_WORDS if match.group(s))
    value = (match.group("value") or "").strip() or None
    if not (match.group("verb") or match.group("wrong") or value or text == match.group("field")):
        return None
    return slot, value


class ActionStartWorkOrder(StoreAction):
    """Start a fresh form: kind from the intent, description from the first message if it
    already says what happened."""

    def name(self) -> str:
        return "action_start_work_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        kind = KIND_BY_INTENT.get(latest_intent(tracker) or "", "report")
        events = [SlotSet(slot, None) for slot in FORM_SLOTS]
        events.append(SlotSet("work_order_kind", kind))
        text = latest_text(tracker).strip()
        if not is_payload(text) and substantive_length(text) >= MIN_DESCRIPTION:
            events.append(SlotSet("description", text))
        dispatcher.utter_message(text=INTRO[kind] + "随时发送“取消”可退出。")
        return events


ASK_TEXT = {
    "description": "请简要描述您要反映的问题（发生了什么、持续多久）。",
    "location": "问题发生在哪里？请提供区县、街道和具体地址。",
    "contact_name": "请问怎么称呼您？（姓名或姓氏即可）",
    "phone": "请留下您的手机号码，方便承办部门联系您。",
}


class _AskSlot(Action, ABC):
    """Asks for one free-text slot of the form (a text from ASK_TEXT)."""

    @property
    @abstractmethod
    def slot(self) -> str:
        """The slot this action asks for."""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(text=ASK_TEXT[self.slot])
        return []


class ActionAskDescription(_AskSlot):
    """What happened."""

    slot = "description"  # type: ignore[assignment]


class ActionAskLocation(_AskSlot):
    """Where."""

    slot = "location"  # type: ignore[assignment]


class ActionAskContactName(_AskSlot):
    """Who."""

    slot = "contact_name"  # type: ignore[assignment]


class ActionAskPhone(_AskSlot):
    """How to reach the citizen."""

    slot = "phone"  # type: ignore[assignment]


class ActionAskCategory(StoreAction):
    """Propose a category from the description, or list all categories."""

    def name(self) -> str:
        return "action_ask_category"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if not tracker.get_slot("category_choices_shown"):
            try:
                proposal = await self.store.propose_category(tracker.get_slot("description") or "")
            except Exception:
                log.exception("category proposal failed")
                proposal = None
            if proposal is not None and proposal.code:
                dispatcher.utter_message(
                    text=f"您反映的问题属于「{proposal.name}」吗？",
                    buttons=[button("是", "/affirm"), button("选择其他", "/deny")],
                )
                return [SlotSet("category_proposed", proposal.code)]
        return await self._list(dispatcher)

    async def _list(self, dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
        categories = await self.store.categories()
        dispatcher.utter_message(
            text="请选择问题类别：",
            buttons=[button(name, f'/affirm{{"category":"{code}"}}') for code, name in categories],
        )
        return [SlotSet("category_choices_shown", True)]


class ValidateWorkOrderForm(FormValidationAction):
    """Extract the category and validate every free-text answer; bad input is re-asked."""

    def __init__(self, store: StoreClient | None = None) -> None:
        self._store = store

    @property
    def store(self) -> StoreClient:
        """The injected client, or the shared one."""
        from actions.common import shared_store

        return self._store if self._store is not None else shared_store()

    def name(self) -> str:
        return "validate_work_order_form"

    async def extract_category(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """The category chosen by button, by 是 to the proposal, or by typing its name."""
        if tracker.get_slot("requested_slot") != "category":
            return {}
        intent = latest_intent(tracker)
        if intent in EXIT_INTENTS:
            return {}
        chosen = entity_value(tracker, "category")
        if chosen:
            return {"category": str(chosen)}
        text = latest_text(tracker).strip()
        try:
            categories = await self.store.categories()
        except Exception:
            log.exception("categories unavailable")
            categories = []
        for code, name in categories:
            if text and (text == name or text == code or (len(text) >= 2 and text in name)):
                return {"category": code}
        proposed = tracker.get_slot("category_proposed")
        if intent == "affirm" and proposed and not tracker.get_slot("category_choices_shown"):
            return {"category": proposed}
        return {"category": CHOOSE}  # 选择其他 or an unknown answer: show the list next

    async def validate_category(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Only known category codes."""
        if value is None:  # cleared by a correction: asked again without a complaint
            return {"category": None}
        codes = {code for code, _ in await self.store.categories()}
        if value in codes:
            return {"category": value}
        if value != CHOOSE or tracker.get_slot("category_choices_shown"):
            dispatcher.utter_message(text="请从下面的类别中选择一个。")
        return {"category": None, "category_choices_shown": True}

    async def validate_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """At least a sentence about what happened; what it already says fills the other
        empty slots (place, name, mobile, and the category when the proposal is confident)."""
        text = str(value or "").strip()
        if is_payload(text) or len(text) < MIN_DESCRIPTION:
            dispatcher.utter_message(
                text=f"描述有点简短，请再具体说说发生了什么（至少{MIN_DESCRIPTION}个字）。"
            )
            return {"description": None}
        text = text[:2000]
        return {"description": text, **await self._prefill(text, tracker)}

    async def _prefill(self, text: str, tracker: Tracker) -> dict[str, Any]:
        """Slots the description answers, for those still empty."""
        fields = extract_fields(text)
        found = {"location": fields.location, "contact_name": fields.name, "phone": fields.phone}
        filled = {slot: v for slot, v in found.items() if v and not tracker.get_slot(slot)}
        if not tracker.get_slot("category") and not tracker.get_slot("category_choices_shown"):
            try:
                proposal = await self.store.propose_category(text)
            except Exception:
                log.exception("category proposal failed")
                proposal = None
            if proposal is not None and proposal.code and proposal.confident:
                filled["category"] = proposal.code
                filled["category_proposed"] = proposal.code
        return filled

    def validate_location(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A place a department can find."""
        if value is None:  # cleared by a correction: asked again without a complaint
            return {"location": None}
        text = str(value or "").strip()
        if is_payload(text) or len(text) < 2:
            dispatcher.utter_message(text="请提供具体地点，例如“XX区XX街道XX小区3号楼”。")
            return {"location": None}
        return {"location": text[:200]}

    def validate_contact_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A short name or surname."""
        if value is None:  # cleared by a correction: asked again without a complaint
            return {"contact_name": None}
        text = _NAME_PREFIX.sub("", str(value or "").strip()).strip(" ，。,.")
        if is_payload(text) or not 1 <= len(text) <= 20 or any(ch.isdigit() for ch in text):
            dispatcher.utter_message(text="请告诉我怎么称呼您，例如“王女士”或“李先生”。")
            return {"contact_name": None}
        return {"contact_name": text}

    async def extract_wo_confirmed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """True for 确认 (the button or typed), False for anything unclear; nothing for
        取消 / 转人工, so the form rejects and the cancel or hand-off rule takes over.

        A correction ("修改地点", "手机改为138…") leaves the order unconfirmed and clears or
        replaces that field: the form asks for it (or validates the new value) and shows the
        summary again."""
        if tracker.get_slot("requested_slot") != CONFIRM_SLOT:
            return {}
        correction = parse_correction(latest_text(tracker))
        if correction is not None:
            slot, value = correction
            if slot == "category":  # the full list next, not the same proposal again
                return {CONFIRM_SLOT: None, "category": CHOOSE}
            return {CONFIRM_SLOT: None, slot: value}
        intent = latest_intent(tracker)
        if intent in EXIT_INTENTS:
            return {}
        typed = _PUNCTUATION.sub("", latest_text(tracker)).lower()
        return {CONFIRM_SLOT: intent == "affirm" or typed in CONFIRM_WORDS}

    def validate_wo_confirmed(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Only an explicit 确认 files; otherwise say so and ask the summary question again."""
        if value is None:  # a correction: the corrected field is asked or the summary shown
            return {CONFIRM_SLOT: None}
        if value is True:
            return {CONFIRM_SLOT: True}
        if value is False:
            dispatcher.utter_message(
                text="工单还没有提交。信息无误请点“确认提交”，不需要登记请点“取消”。"
            )
        return {CONFIRM_SLOT: None}

    def validate_phone(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A mainland mobile number (11 digits, 1[3-9]…)."""
        if value is None:  # cleared by a correction: asked again without a complaint
            return {"phone": None}
        digits = re.sub(r"[^\d+]", "", str(value or ""))
        mobile = normalize_mobile(digits)
        if mobile is None:
            dispatcher.utter_message(
                text="手机号码格式不正确，请输入11位手机号，例如 13812345678。"
            )
            return {"phone": None}
        return {"phone": mobile}


class ActionSummarizeWorkOrder(StoreAction):
    """Asks for `wo_confirmed`: what will be filed, with the phone masked, and buttons to
    confirm or cancel."""

    def name(self) -> str:
        return "action_ask_wo_confirmed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        code = tracker.get_slot("category")
        try:
            names = dict(await self.store.categories())
        except Exception:
            names = {}
        kind = tracker.get_slot("work_order_kind") or "report"
        phone = tracker.get_slot("phone") or ""
        lines = [
            "请确认以下信息：",
            f"类型：{KIND_LABELS.get(kind, kind)}",
            f"类别：{names.get(code, code or '待定')}",
            f"问题描述：{tracker.get_slot('description') or ''}",
            f"地点：{tracker.get_slot('location') or ''}",
            f"联系人：{tracker.get_slot('contact_name') or ''}",
            f"手机：{mask_phone(phone)}",
            "信息有误请点“修改…”，或直接发送如“地点改为…”。",
        ]
        dispatcher.utter_message(text="\n".join(lines), buttons=CONFIRM_BUTTONS)
        return []


def idempotency_key(tracker: Tracker) -> str:
    """Stable per confirming message: the same action call retried gives the same key."""
    stamp = latest_user_timestamp(tracker)
    raw = f"{tracker.sender_id}|{stamp}"
    return "rasa:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


class ActionSubmitWorkOrder(StoreAction):
    """File the order (idempotent), give the tracking number and the commitments."""

    def name(self) -> str:
        return "action_submit_work_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        slot = tracker.get_slot
        try:
            view = await self.store.create_work_order(
                sender_id=tracker.sender_id,
                idempotency_key=idempotency_key(tracker),
                kind=slot("work_order_kind") or "report",
                category_code=slot("category") or "other",
                description=slot("description") or "",
                location=slot("location") or "",
                contact_name=slot("contact_name") or "",
                phone=slot("phone") or "",
            )
        except Exception:
            log.exception("work order creation failed")
            dispatcher.utter_message(
                text="抱歉，系统繁忙，工单暂未提交成功。您填写的信息已保留，"
                "稍后可再点“确认提交”重试，或转人工客服。",
                buttons=[HUMAN_BUTTON],
            )
            # Back into the form at the confirmation step: the summary is asked again.
            return [ActiveLoop(FORM_NAME), SlotSet(CONFIRM_SLOT, None)]
        lines = [f"已为您登记工单，编号：{view.tracking_no}"]
        if view.department_name:
            lines.append(f"承办单位：{view.department_name}")
        if view.response_due and view.result_due:
            lines.append(
                f"我们将在{local_date(view.response_due)}前与您联系，"
                f"{local_date(view.result_due)}前给出办理结果。"
            )
        lines.append("请保存工单编号，可随时发送编号查询进度。")
        dispatcher.utter_message(text="\n".join(lines))
        return [SlotSet(s, None) for s in FORM_SLOTS] + [SlotSet("tracking_no", view.tracking_no)]


class ActionCancelWorkOrder(StoreAction):
    """Drop everything the form collected."""

    def name(self) -> str:
        return "action_cancel_work_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return [SlotSet(s, None) for s in FORM_SLOTS] + [SlotSet("requested_slot", None)]
