"""Satisfaction after 办结 (回访): `/rate{"score": ..., "tracking_no": ...}` or free text."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import StoreAction, entity_value, latest_text
from store.tracking import find_in_text

log = logging.getLogger(__name__)
SCORES = ("satisfied", "basically_satisfied", "unsatisfied")
RATEABLE = ("resolved", "callback")


def score_from_text(text: str) -> str | None:
    """Map what a citizen wrote to a score; 不满意 wins over 满意."""
    if any(w in text for w in ("不满意", "不滿意", "差评", "没解决", "沒解決", "没有解决")):
        return "unsatisfied"
    if any(w in text for w in ("基本满意", "基本滿意", "一般", "还行", "還行", "还算", "凑合")):
        return "basically_satisfied"
    if any(w in text for w in ("满意", "滿意", "好评", "很好", "不错", "五星")):
        return "satisfied"
    return None


class ActionRate(StoreAction):
    """Record the citizen's rating; 不满意 reopens the order (the store does that)."""

    def name(self) -> str:
        return "action_rate"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text = latest_text(tracker)
        score = entity_value(tracker, "score")
        if score not in SCORES:
            score = score_from_text(text)
        tracking_no = (
            entity_value(tracker, "tracking_no")
            or find_in_text(text)
            or tracker.get_slot("tracking_no")
        )
        if score is None:
            dispatcher.utter_message(
                text="请问您对办理结果的评价是？",
                buttons=[
                    {"title": title, "payload": f'/rate{{"score":"{s}"}}'}
                    for title, s in (
                        ("满意", "satisfied"),
                        ("基本满意", "basically_satisfied"),
                        ("不满意", "unsatisfied"),
                    )
                ],
            )
            return []
        try:
            if not tracking_no:
                orders = await self.store.my_work_orders(tracker.sender_id)
                pending = [o for o in orders if o.status in RATEABLE]
                tracking_no = pending[0].tracking_no if pending else None
            view = None
            if tracking_no:
                view = await self.store.rate(
                    sender_id=tracker.sender_id, tracking_no=str(tracking_no), score=score
                )
        except Exception:
            log.exception("rating failed")
            dispatcher.utter_message(text="抱歉，评价暂时没有提交成功，请稍后再试。")
            return []
        if view is None:
            dispatcher.utter_message(
                text="抱歉，没有找到可以评价的工单。只有已办结、由您本人提交的工单可以评价。"
            )
            return []
        if score == "unsatisfied":
            dispatcher.utter_message(
                text=f"很抱歉没能让您满意。工单 {view.tracking_no} 已重新交办，"
                "承办单位会再次处理并与您联系。"
            )
        else:
            dispatcher.utter_message(text=f"感谢您的评价！工单 {view.tracking_no} 已办结归档。")
        return [SlotSet("tracking_no", view.tracking_no)]
