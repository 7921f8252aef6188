"""What the citizen is told about a hand-off: queue place and wait, off-hours offer, expiry,
an agent joining, the bot coming back. Used by the console, the router and the action server."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Button, Reply
from bot.settings import Settings, get_settings
from store import assignment
from store.models import Handoff
from store.queue_notice import queue_notice
from store.service_hours import ServiceHours

LEAVE_MESSAGE = Button("留言登记工单", "/leave_message")
KEEP_WAITING = Button("继续等待", "继续等待")
NOTICE_KEY = "handoff:notice:{}"


async def handoff_notice(
    session: AsyncSession, handoff: Handoff, now: datetime, *, settings: Settings | None = None
) -> Reply:
    """The message for a citizen whose hand-off was just opened: the store's `QueueState`
    in the words of `store.queue_notice` (place and wait, or an offer to leave a message)."""
    settings = settings or get_settings()
    hours = ServiceHours.parse(settings.service_hours, settings.timezone)
    state = await assignment.queue_state(session, handoff, now, hours)
    text, buttons = queue_notice(state, now, hours.tz)
    return Reply(
        text=text,
        buttons=tuple(Button(title, payload) for title, payload in buttons),
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
