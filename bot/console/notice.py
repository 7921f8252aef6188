"""What the citizen is told about a hand-off: queue place and wait, off-hours offer, expiry,
an agent joining, the bot coming back. Used by the console, the router and the action server."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button, Reply
from bot.service_hours import ServiceHours
from bot.settings import Settings, get_settings
from store import agents, assignment
from store.models import Handoff

LEAVE_MESSAGE = Button("留言登记工单", "/leave_message")
KEEP_WAITING = Button("继续等待", "继续等待")
NOTICE_KEY = "handoff:notice:{}"


def _hours(settings: Settings) -> ServiceHours:
    return ServiceHours.parse(settings.service_hours, settings.timezone)


def _when(at: datetime, now: datetime, tz) -> str:
    local_now = now.astimezone(tz)
    if at.date() == local_now.date():
        return f"今天 {at:%H:%M}"
    return f"{at.month}月{at.day}日 {at:%H:%M}"


async def handoff_notice(
    session: AsyncSession, handoff: Handoff, now: datetime, *, settings: Settings | None = None
) -> Reply:
    """The message for a citizen whose hand-off was just opened.

    Outside service hours or with no agent online: an offer to leave a message (work order)
    instead of waiting. Otherwise: place in the queue and the estimated wait
    (place × average handling time, 3 minutes by default).
    """
    settings = settings or get_settings()
    hours = _hours(settings)
    buttons = (LEAVE_MESSAGE, KEEP_WAITING)
    if not hours.in_service(now):
        opening = hours.next_opening(now)
        when = f"人工客服将于{_when(opening, now, hours.tz)}上班，" if opening else ""
        return Reply(
            text=f"现在是非人工服务时间，{when}您可以先留言登记工单，我们会尽快处理。",
            buttons=buttons,
            sender="system",
        )
    if not await agents.online_agents(session, now):
        return Reply(
            text="目前暂无在线的人工客服。您可以留言登记工单，我们会尽快联系您；也可以继续等待。",
            buttons=buttons,
            sender="system",
        )
    position, wait = await assignment.estimate_wait(session, handoff)
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    return Reply(
        text=f"正在为您转接人工客服，您当前排在第{position}位，预计等待约{minutes}分钟，请稍候。",
        buttons=(LEAVE_MESSAGE,),
        sender="system",
    )


def agent_joined(display_name: str) -> Reply:
    """An agent took the conversation."""
    return Reply(text=f"人工客服{display_name}已接入，请问有什么可以帮您？", sender="system")


def returned_to_bot() -> Reply:
    """The agent handed the conversation back to the assistant."""
    return Reply(
        text="人工客服已结束本次服务，智能助手继续为您服务，有问题请直接提问。", sender="system"
    )


def closed() -> Reply:
    """The agent closed the hand-off."""
    return Reply(
        text="本次人工服务已结束，感谢您的耐心。如还有问题，欢迎随时留言。", sender="system"
    )


def expired() -> Reply:
    """No agent took the hand-off in time."""
    return Reply(
        text="抱歉，目前人工客服繁忙，未能及时为您接通。您可以留言登记工单，我们会尽快联系您。",
        buttons=(LEAVE_MESSAGE,),
        sender="system",
    )
