"""First fallback: the knowledge package may still know the answer; otherwise ask the citizen
to clarify with the most likely meanings (entries and intents) as buttons."""

from __future__ import annotations

from datetime import date
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import HUMAN_BUTTON, NONE_OF_THESE_BUTTON, button
from actions.faq import NO_ENTRY_TEXT, Plan, plan_for, say_plan
from knowledge.selector import Selector, get_selector, local_today

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
FALLBACK_INTENT = "nlu_fallback"


def classifier_ranking(tracker: Tracker) -> list[dict[str, Any]]:
    """DIET's intent ranking of the latest message, without the fallback entry."""
    ranking = (tracker.latest_message or {}).get("intent_ranking") or []
    return [item for item in ranking if item.get("name") != FALLBACK_INTENT]


def choices_for(plan: Plan, ranking: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Up to MAX_CHOICES buttons: entries the selector offers and likely intents, in DIET's
    order (entries where `faq` ranks); never an entry the selector found unrelated."""
    entries = [plan.entry] if plan.kind in ("answer", "aspect") and plan.entry else []
    entries += plan.candidates if plan.kind == "clarify" else []
    faq_buttons = [button(e.question, e.question) for e in entries]
    choices: list[dict[str, str]] = []
    for item in ranking:
        name, confidence = item.get("name"), float(item.get("confidence") or 0.0)
        if name == "faq":
            choices += faq_buttons
            faq_buttons = []
        elif name in INTENT_CHOICES and confidence >= INTENT_FLOOR:
            choices.append(button(*INTENT_CHOICES[name]))
    choices += faq_buttons
    unique: list[dict[str, str]] = []
    for choice in choices:
        if choice["payload"] not in {c["payload"] for c in unique}:
            unique.append(choice)
    return unique[:MAX_CHOICES]


def answers_directly(plan: Plan, ranking: list[dict[str, Any]]) -> bool:
    """True when the clarify turn should answer: the selector is sure (or it is a follow-up on
    the last entry) and DIET's best guess, below the fallback threshold, was a question."""
    top = ranking[0].get("name") if ranking else None
    return plan.kind in ("answer", "aspect", "aspect_unknown") and top == "faq"


class ActionClarify(Action):
    """Answer when the selector is sure and DIET leans to a question; start the intake for a
    long story no entry fits; else show the top candidates plus a way to a human."""

    def __init__(self, selector: Selector | None = None, day: date | None = None) -> None:
        self._selector = selector
        self._day = day

    def name(self) -> str:
        return "action_clarify"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        selector = self._selector or get_selector()
        plan = plan_for(tracker, selector, self._day or local_today())
        ranking = classifier_ranking(tracker)
        if answers_directly(plan, ranking):
            events = await say_plan(plan, dispatcher, tracker, domain)
            return [*events, SlotSet("clarified", False)]
        if plan.kind == "intake":
            return await say_plan(plan, dispatcher, tracker, domain)
        choices = choices_for(plan, ranking)
        if not choices:
            dispatcher.utter_message(
                text=NO_ENTRY_TEXT, buttons=[HUMAN_BUTTON, button("留言登记工单", "/leave_message")]
            )
        else:
            dispatcher.utter_message(
                text="抱歉，我不太确定您的意思。您是想：",
                buttons=[*choices, NONE_OF_THESE_BUTTON],
            )
        return [SlotSet("clarified", True)]
