"""What a citizen is told when their work order moves (short, polite, plain Chinese)."""

from __future__ import annotations

import json
from typing import Any

from bot.messages import Button, Reply

RATING_BUTTONS = (
    ("满意", "satisfied"),
    ("基本满意", "basically_satisfied"),
    ("不满意", "unsatisfied"),
)


def rating_buttons(tracking_no: str) -> tuple[Button, ...]:
    """Buttons whose payload Rasa parses as the `rate` intent with its entities."""
    return tuple(
        Button(title, "/rate" + json.dumps({"score": score, "tracking_no": tracking_no}))
        for title, score in RATING_BUTTONS
    )


def status_reply(event: dict[str, Any], department: str | None = None) -> Reply | None:
    """The message for one outbox event of topic `work_order.status`; None = tell nothing.

    Changes the citizen made themselves (a rating in chat) were answered in the chat already.
    """
    if event.get("actor") == "citizen":
        return None
    no = event["tracking_no"]
    what = event.get("what") or event.get("status")
    note = event.get("note")
    texts = {
        "dispatched": f"您的工单 {no} 已派至{department or '承办单位'}办理，请耐心等待。",
        "returned": f"您的工单 {no} 正在重新派单，我们会尽快安排承办单位。",
        "in_progress": f"您的工单 {no} 正在办理中。",
        "reopened": f"您的工单 {no} 已重新交办，我们会继续跟进，感谢您的反馈。",
        "closed": f"感谢您的评价！工单 {no} 已完成。",
        "delay": f"您的工单 {no} 需要延期办理。原因：{note}",
        "supervision": f"您的工单 {no} 已超过办理时限，热线已启动督办，我们会督促尽快办理。",
    }
    if what == "resolved":
        result = f"办理结果：{note}\n" if note else ""
        return Reply(
            text=f"您的工单 {no} 已办结。\n{result}请您对办理结果进行评价：",
            buttons=rating_buttons(no),
            sender="system",
        )
    if what in ("received", "callback"):
        return None  # the citizen was told at filing; callback is the rating request itself
    text = texts.get(what)
    return Reply(text=text, sender="system") if text else None
