"""Decides who answers a citizen's message: Rasa while the bot owns the conversation, a human
agent while a hand-off is open. Every inbound message is stored before it is processed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from bot.channels.attachments import transcript_text
from bot.channels.base import ChannelRegistry, DeliveryError
from bot.messages import Button, InboundMessage, Reply
from bot.rasa_client import MESSAGE_ID, RasaClient, RasaUnavailable
from bot.text import clean_text, for_nlu
from store import conversations, handoffs
from store.assignment import leave_message_instead, wants_to_leave_message
from store.bus import Bus
from store.db import Database
from store.models import Conversation, Message

log = logging.getLogger(__name__)

CONSOLE_TOPIC = "console"
LEAVE_MESSAGE = "/leave_message"  # payload of the "留言登记工单" button
GREET = "/greet"  # the greet intent as a payload: Rasa answers with its welcome, no NLU guess
# Answers some messages without Rasa (e.g. "绑定 123456"); None = not mine.
Interceptor = Callable[[InboundMessage], Awaitable[list[Reply] | None]]
APOLOGY = Reply(
    text="抱歉，智能助手暂时无法回答。您的留言已保存，正在为您转接人工客服，请稍候。",
    buttons=(Button("我要留言登记工单", "/report_problem"),),
    sender="system",
)
# The answer to pictures, voice, video, files, locations and links while the bot owns the chat.
MEDIA_NOTICE = Reply(
    text="目前只能识别文字，请用文字描述您的问题，或回复“转人工”。",
    sender="system",
)


def reply_payload(reply: Reply) -> dict[str, Any] | None:
    """What is stored with a message besides its text."""
    payload: dict[str, Any] = {}
    if reply.buttons:
        payload["buttons"] = [asdict(b) for b in reply.buttons]
    if reply.link:
        payload["link"] = reply.link
    return payload or None


class Delivery(StrEnum):
    """What became of a push (Router.push)."""

    DELIVERED = "delivered"
    FAILED = "failed"  # not configured, or refused for good: trying again will not help
    RETRY = "retry"  # a transient failure: the same push may pass later


class Router:
    """One per gateway process."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        rasa: RasaClient,
        channels: ChannelRegistry,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        self.db = db
        self.bus = bus
        self.rasa = rasa
        self.channels = channels
        self.interceptors = list(interceptors)

    async def handle(self, msg: InboundMessage) -> list[Reply]:
        """Store the message, then answer it (or pass it to the agent who owns the chat).

        Returns the replies to render in the channel's own response; [] when a human owns the
        conversation or the message is a retry of one already handled.

        A message with attachments is stored with a label per attachment (`[图片]` …) and the
        attachments themselves in its payload; the bot does not read it, it answers MEDIA_NOTICE.
        """
        text = clean_text(msg.text)
        if not text and not msg.attachments:
            return []
        stored_text = transcript_text(text, msg.attachments) if msg.attachments else text
        async with self.db.session() as s:
            conv = await conversations.ensure_conversation(
                s, msg.channel, msg.external_id, msg.metadata.get("display_name")
            )
        async with self.bus.lock(f"conv:{conv.id}", ttl=30, wait=30):
            async with self.db.session() as s:
                stored = await conversations.store_inbound(
                    s,
                    conv,
                    stored_text,
                    msg.message_id,
                    {"attachments": list(msg.attachments)} if msg.attachments else None,
                )
                if stored is None:
                    return []
                owner = await handoffs.open_for(s, conv.id)
                if owner is not None and wants_to_leave_message(text):
                    # Waiting citizen chose to leave a message (button or typed 留言 / 登记工单):
                    # back to the bot, which starts the work-order form.
                    if await leave_message_instead(s, owner):
                        owner = None
                        text = LEAVE_MESSAGE
            await self._announce(conv, stored)
            if owner is not None:
                await self._mark(stored.id, "processed")
                return []
            if msg.attachments:
                await self._store_replies(conv, [MEDIA_NOTICE], answered=(stored.id, "processed"))
                return [MEDIA_NOTICE]
            for intercept in self.interceptors:
                replies = await intercept(msg)
                if replies is not None:
                    await self._store_replies(conv, replies, answered=(stored.id, "processed"))
                    return replies
            return await self._ask_bot(conv, stored, text, msg)

    async def welcome(self, channel: str, external_id: str) -> list[Reply]:
        """The assistant's welcome in a new conversation, before the citizen has said anything.

        Creates the conversation, asks Rasa for the greet intent's answer and stores only the
        replies (there is no citizen message). [] when the conversation already has messages
        or Rasa does not answer: a welcome is not worth a hand-off.
        """
        async with self.db.session() as s:
            conv = await conversations.ensure_conversation(s, channel, external_id)
        async with self.bus.lock(f"conv:{conv.id}", ttl=30, wait=30):
            async with self.db.session() as s:
                if await conversations.history(s, conv.id, 1, include_internal=True):
                    return []
            try:
                replies = await self.rasa.send(conv.public_id, GREET, {"channel": channel})
            except RasaUnavailable as exc:
                log.info("no welcome for conversation %s: %s", conv.public_id, exc)
                return []
            await self._store_replies(conv, replies)
        return replies

    async def _ask_bot(
        self, conv: Conversation, stored: Message, text: str, msg: InboundMessage
    ) -> list[Reply]:
        metadata = {"channel": msg.channel, MESSAGE_ID: stored.id}
        try:
            replies = await self.rasa.send(conv.public_id, for_nlu(text), metadata)
        except RasaUnavailable as exc:
            log.warning("rasa unavailable for conversation %s: %s", conv.public_id, exc)
            async with self.db.session() as s:
                c = await s.get_one(Conversation, conv.id)
                await handoffs.request(s, c, "rasa_down", {"last_text_id": stored.id})
            replies = [APOLOGY]
            status = "failed"
        else:
            status = "processed"
        await self._store_replies(conv, replies, answered=(stored.id, status))
        return replies

    async def push(
        self,
        conversation_id: int,
        replies: Sequence[Reply],
        *,
        agent_id: int | None = None,
        key: str | None = None,
    ) -> Delivery:
        """Store and deliver replies outside a request (agent replies, status pushes).

        Returns DELIVERED if the channel accepted them; FAILED if the channel is not configured
        or refused for good; RETRY if it failed in a way that may pass (DeliveryError.retry).
        Whatever the outcome they stay stored and show in the citizen's history; undelivered
        ones are marked `failed`, with the reason in their payload (`undelivered`).

        `key` makes a push that may be retried stored once: the messages are stored with
        `channel_message_id` `<key>:<n>`, and a later push with the same key (and conversation)
        sends again the messages stored then, marking them `processed` once delivered, instead
        of storing them a second time.
        """
        async with self.db.session() as s:
            conv = await s.get_one(Conversation, conversation_id)
            identity = await conversations.identity_of(s, conv)
        stored = await self._stored_before(conv.id, key, len(replies))
        again = bool(stored)
        if not again:
            stored = await self._store_replies(conv, replies, agent_id=agent_id, key=key)
        adapter = self.channels.get(identity.channel)
        if adapter is None:
            await self._undelivered(stored, f"channel {identity.channel} is not configured")
            return Delivery.FAILED
        try:
            await adapter.send(identity.external_id, replies)
        except DeliveryError as exc:
            log.warning(
                "delivery to %s failed%s: %s",
                identity.channel,
                " (may pass later)" if exc.retry else "",
                exc,
            )
            await self._undelivered(stored, str(exc))
            return Delivery.RETRY if exc.retry else Delivery.FAILED
        if again:
            await self._delivered(stored)
        return Delivery.DELIVERED

    async def _stored_before(self, conversation_id: int, key: str | None, count: int) -> list[int]:
        """Ids of the messages an earlier push with `key` stored; [] if there was none."""
        if key is None or count == 0:
            return []
        wanted = [f"{key}:{n}" for n in range(count)]
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(Message.id, Message.channel_message_id).where(
                        Message.conversation_id == conversation_id,
                        Message.sender != "citizen",
                        Message.channel_message_id.in_(wanted),
                    )
                )
            ).all()
        ids = {cmid: mid for mid, cmid in rows}
        return [ids[k] for k in wanted] if len(ids) == count else []

    async def _store_replies(
        self,
        conv: Conversation,
        replies: Sequence[Reply],
        agent_id: int | None = None,
        key: str | None = None,
        answered: tuple[int, str] | None = None,
    ) -> list[int]:
        """Store the bot's or an agent's replies; `answered` = (citizen message id, status) is
        marked in the same transaction (one commit per turn instead of two)."""
        async with self.db.session() as s:
            stored = [
                await conversations.store_outbound(
                    s, conv.id, r.sender, r.text, reply_payload(r), agent_id=agent_id
                )
                for r in replies
            ]
            if key is not None:
                for n, m in enumerate(stored):
                    m.channel_message_id = f"{key}:{n}"
            if answered is not None:
                (await s.get_one(Message, answered[0])).status = answered[1]
        for m in stored:
            await self._announce(conv, m)
        return [m.id for m in stored]

    async def _undelivered(self, message_ids: Sequence[int], reason: str) -> None:
        """Keep with stored outbound messages that the platform never got them, and why."""
        async with self.db.session() as s:
            for message_id in message_ids:
                m = await s.get_one(Message, message_id)
                m.status = "failed"
                m.payload = {**(m.payload or {}), "undelivered": reason[:300]}

    async def _delivered(self, message_ids: Sequence[int]) -> None:
        """Undo `_undelivered` for messages a retry got through."""
        async with self.db.session() as s:
            for message_id in message_ids:
                m = await s.get_one(Message, message_id)
                m.status = "processed"
                rest = {k: v for k, v in (m.payload or {}).items() if k != "undelivered"}
                m.payload = rest or None

    async def _announce(self, conv: Conversation, msg: Message) -> None:
        """Tell live consoles (and other tabs of the widget) about a new message."""
        await self.bus.publish(
            CONSOLE_TOPIC,
            {
                "type": "message",
                "conversation": conv.public_id,
                "message": conversations.message_json(msg),
            },
        )

    async def _mark(self, message_id: int, status: str) -> None:
        async with self.db.session() as s:
            m = await s.get_one(Message, message_id)
            m.status = status
