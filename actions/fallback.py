"""First fallback: ask the citizen to clarify with the most likely meanings as buttons."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import HUMAN_BUTTON, NONE_OF_THESE_BUTTON, button
from actions.faq import faq_candidates
from actions.knowledge import KnowledgeBase, get_knowledge

# Intents worth offering as a clarification, with what the citizen sees.
INTENT_CHOICES: dict[str, tuple[str, str]] = {
    "report_problem": ("我要反映问题", "/report_problem"),
    "complain": ("我要投诉", "/complain"),
    "suggest": ("我要提建议", "/suggest"),
    "leave_message": ("留言登记", "/leave_message"),
    "check_status": ("查询工单进度", "/check_status"),
    "my_work_orders": ("我的工单", "/my_work_orders"),
    "browse_topic": ("看看常见问题", "/browse_topic"),
}
MAX_CHOICES = 3
INTENT_FLOOR = 0.1


class ActionClarify(Action):
    """Show the top 2–3 candidates (FAQ questions and intents) plus a way to a human."""

    def __init__(self, knowledge: KnowledgeBase | None = None) -> None:
        self._knowledge = knowledge

    def name(self) -> str:
        return "action_clarify"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        kb = self._knowledge or get_knowledge()
        ranking = (tracker.latest_message or {}).get("intent_ranking") or []
        choices: list[dict[str, str]] = []
        for item in ranking:
            name, confidence = item.get("name"), float(item.get("confidence") or 0.0)
            if name == "faq":
                for entry in faq_candidates(tracker, kb, limit=MAX_CHOICES):
                    choices.append(button(entry.question, entry.question))
            elif name in INTENT_CHOICES and confidence >= INTENT_FLOOR:
                choices.append(button(*INTENT_CHOICES[name]))
        if not any(item.get("name") == "faq" for item in ranking):
            choices += [button(e.question, e.question) for e in faq_candidates(tracker, kb, 2)]
        unique: list[dict[str, str]] = []
        for choice in choices:
            if choice["payload"] not in {c["payload"] for c in unique}:
                unique.append(choice)
        unique = unique[:MAX_CHOICES]
        if not unique:
            dispatcher.utter_message(
                text="抱歉，我没有理解您的意思。请换个说法再试一次，或直接转人工。",
                buttons=[HUMAN_BUTTON],
            )
        else:
            dispatcher.utter_message(
                text="抱歉，我不太确定您的意思。您是想问：",
                buttons=[*unique, NONE_OF_THESE_BUTTON],
            )
        return [SlotSet("clarified", True)]
