"""The words for a citizen's place in the hand-off queue, rendered from `QueueState` facts.

Pure text, no queries: `store.assignment.queue_state` gathers the facts. It lives in `store`
only because the action server's `StoreClient` must answer with text and `actions` may not
import `bot`; the console wraps the same words in a `Reply` (`bot/console/notice.py`).
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo

from store.assignment import QueueState

LEAVE_MESSAGE = ("留言登记工单", "/leave_message")
KEEP_WAITING = ("继续等待", "继续等待")


def _when(at: datetime, now: datetime, tz: tzinfo) -> str:
    local_now = now.astimezone(tz)
    if at.date() == local_now.date():
        return f"今天 {at:%H:%M}"
    return f"{at.month}月{at.day}日 {at:%H:%M}"


def queue_notice(
    state: QueueState, now: datetime, tz: tzinfo
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(text, buttons as (title, payload)) for a citizen whose hand-off was just opened.

    Outside service hours or with no agent online: an offer to leave a message (work order)
    instead of waiting. Otherwise: place in the queue and the estimated wait.
    """
    if not state.in_service:
        opening = state.next_opening
        when = f"人工客服将于{_when(opening, now, tz)}上班，" if opening else ""
        text = f"现在是非人工服务时间，{when}您可以先留言登记工单，我们会尽快处理。"
        return text, (LEAVE_MESSAGE, KEEP_WAITING)
    if not state.anyone_on_duty:
        text = "目前暂无在线的人工客服。您可以留言登记工单，我们会尽快联系您；也可以继续等待。"
        return text, (LEAVE_MESSAGE, KEEP_WAITING)
    minutes = max(1, math.ceil(state.expected_wait.total_seconds() / 60))
    text = (
        f"正在为您转接人工客服，您当前排在第{state.position}位，预计等待约{minutes}分钟，请稍候。"
    )
    return text, (LEAVE_MESSAGE,)
