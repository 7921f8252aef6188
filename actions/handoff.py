"""Hand-off to a human agent: one turn after 转人工, or after a second fallback."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import (
    MESSAGE_BUTTON,
    StoreAction,
    button,
    latest_intent,
    latest_text,
    recent_intents,
    safe_excerpt,
)

log = logging.getLogger(__name__)
PII_SLOTS = ("phone", "contact_name", "description", "location")
# What the form had learnt, shown to the agent (encrypted at rest by the store client).
CONTEXT_SLOTS = ("work_order_kind", "category", *PII_SLOTS, "tracking_no")


def filled_slots(tracker: Tracker) -> dict[str, Any]:
    """The form slots the bot has filled so far, so the agent does not ask again."""
    values = {name: tracker.get_slot(name) for name in CONTEXT_SLOTS}
    return {name: value for name, value in values.items() if value not in (None, "", [])}


class ActionHandoff(StoreAction):
    """Ask the store for a hand-off and tell the citizen their place in the queue."""

    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        reason = "fallback" if latest_intent(tracker) == "nlu_fallback" else "request_human"
        context = {
            "last_intents": recent_intents(tracker),
            "last_text": safe_excerpt(latest_text(tracker)),
            "slots": filled_slots(tracker),
        }
        try:
            ticket = await self.store.request_handoff(
                sender_id=tracker.sender_id, reason=reason, context=context
            )
        except Exception:
            log.exception("hand-off request failed")
            dispatcher.utter_message(
                text="抱歉，暂时无法转接人工客服。您可以留言登记工单，工作人员会尽快联系您。",
                buttons=[MESSAGE_BUTTON],
            )
            return [SlotSet(slot, None) for slot in PII_SLOTS] + [SlotSet("clarified", False)]
        if reason == "fallback":
            dispatcher.utter_message(text="看来我没能帮上忙，正在为您转接人工客服。")
        dispatcher.utter_message(
            text=ticket.notice,
            buttons=[button(title, payload) for title, payload in ticket.buttons],
        )
        return [SlotSet(slot, None) for slot in PII_SLOTS] + [SlotSet("clarified", False)]
