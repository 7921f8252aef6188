"""FAQ answers from the knowledge base, chosen by the ResponseSelector; topic menus."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import (
    HUMAN_BUTTON,
    MESSAGE_BUTTON,
    NONE_OF_THESE_BUTTON,
    button,
    entity_value,
    latest_text,
)
from actions.knowledge import FaqEntry, KnowledgeBase, get_knowledge, topic_from_text

MIN_CONFIDENCE = 0.3  # below this the answer is not given, candidates are shown instead
MIN_MARGIN = 0.1  # top two closer than this: ambiguous
CANDIDATE_FLOOR = 0.05  # candidates below this are not worth a button
LOCAL_TZ = ZoneInfo("Asia/Shanghai")

TOPIC_BUTTONS = [
    ("社保", "social_insurance"),
    ("医保", "medical_insurance"),
    ("公积金", "housing_fund"),
    ("企业开办", "business"),
    ("12345热线", "hotline"),
]


def today() -> date:
    """Today in the hotline's time zone."""
    from datetime import datetime

    return datetime.now(LOCAL_TZ).date()


def faq_ranking(tracker: Tracker, retrieval_intent: str = "faq") -> list[tuple[str, float]]:
    """(entry id, confidence) from the ResponseSelector, best first."""
    selector = (tracker.latest_message or {}).get("response_selector") or {}
    result = selector.get(retrieval_intent) or selector.get("default") or {}
    ranking = result.get("ranking") or []
    out: list[tuple[str, float]] = []
    for item in ranking:
        key = item.get("intent_response_key") or ""
        if "/" in key:
            out.append((key.split("/", 1)[1], float(item.get("confidence") or 0.0)))
    if not out:
        response = result.get("response") or {}
        key = response.get("intent_response_key") or ""
        if "/" in key:
            out.append((key.split("/", 1)[1], float(response.get("confidence") or 0.0)))
    out.sort(key=lambda pair: pair[1], reverse=True)
    return out


def faq_candidates(
    tracker: Tracker, kb: KnowledgeBase, limit: int = 3, day: date | None = None
) -> list[FaqEntry]:
    """Up to `limit` servable entries the citizen may have meant."""
    day = day or today()
    out: list[FaqEntry] = []
    for entry_id, confidence in faq_ranking(tracker):
        entry = kb.get(entry_id)
        if entry is None or entry.is_expired(day) or confidence < CANDIDATE_FLOOR:
            continue
        out.append(entry)
        if len(out) == limit:
            break
    return out


def answer_text(entry: FaqEntry) -> str:
    """The answer plus its source in one short line."""
    text = entry.answer
    if entry.source:
        text += f"\n依据：{entry.source}"
    return text


class ActionAnswerFaq(Action):
    """Serve the selected FAQ answer, or candidates when unsure, or a human when stale."""

    def __init__(self, knowledge: KnowledgeBase | None = None, day: date | None = None) -> None:
        self._knowledge = knowledge
        self._day = day

    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        kb = self._knowledge or get_knowledge()
        day = self._day or today()
        ranking = faq_ranking(tracker)
        top_id, top_conf = ranking[0] if ranking else (None, 0.0)
        second_conf = ranking[1][1] if len(ranking) > 1 else 0.0
        entry = kb.get(top_id) if top_id else None
        confident = top_conf >= MIN_CONFIDENCE and top_conf - second_conf >= MIN_MARGIN
        if entry is not None and confident:
            if entry.is_expired(day):
                dispatcher.utter_message(
                    text="这个问题的答复正在更新核实，为避免给您过时的信息，"
                    "建议转人工客服或登记工单，由工作人员为您解答。",
                    buttons=[HUMAN_BUTTON, MESSAGE_BUTTON],
                )
                return []
            dispatcher.utter_message(text=answer_text(entry))
            return []
        candidates = faq_candidates(tracker, kb, day=day)
        if not candidates:
            dispatcher.utter_message(
                text="抱歉，这个问题我暂时答不上来。您可以换个说法，或转人工、登记工单。",
                buttons=[HUMAN_BUTTON, MESSAGE_BUTTON],
            )
            return []
        dispatcher.utter_message(
            text="您想问的是下面哪个问题？",
            buttons=[button(e.question, e.question) for e in candidates] + [NONE_OF_THESE_BUTTON],
        )
        return []


class ActionTopicMenu(Action):
    """Common questions of one topic as buttons (welcome quick replies lead here)."""

    def __init__(self, knowledge: KnowledgeBase | None = None) -> None:
        self._knowledge = knowledge

    def name(self) -> str:
        return "action_topic_menu"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        kb = self._knowledge or get_knowledge()
        topic = entity_value(tracker, "topic") or topic_from_text(latest_text(tracker))
        entries = kb.menu(topic) if topic else []
        if not entries:
            dispatcher.utter_message(
                text="请直接描述您的问题，或选择一个主题：",
                buttons=[
                    button(title, f'/browse_topic{{"topic":"{key}"}}')
                    for title, key in TOPIC_BUTTONS
                    if kb.by_topic.get(key)
                ],
            )
            return []
        name = kb.topic_name(topic) or ""
        dispatcher.utter_message(
            text=f"{name}常见问题如下，也可以直接输入您的问题：",
            buttons=[button(e.question, e.question) for e in entries],
        )
        return []
