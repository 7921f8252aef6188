"""Decides who answers a citizen's message: Rasa while the bot owns the conversation, a human
agent while a hand-off is open. Every inbound message is stored before it is processed, and
answered exactly once: claimed as it is stored, claimed again by the platform's retry or the
sweeper (bot/sweeper.py) if it is left unanswered (store/claims.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from bot.channels.attachments import transcript_text
from bot.channels.base import ChannelRegistry, DeliveryError
from bot.messages import Button, InboundMessage, Reply
from bot.rasa_client import MESSAGE_ID, RasaClient, RasaTimeout, RasaUnavailable
from bot.text import clean_text, for_nlu
from store import claims, conversations, handoffs
from store.assignment import leave_message_instead, wants_to_leave_message
from store.bus import Bus
from store.db import Database
from store.masking import mask_text
from store.models import Conversation, Message, utcnow

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


@dataclass(frozen=True)
class Turn:
    """A stored citizen message this process has claimed and now answers."""

    conversation: Conversation
    message_id: int
    text: str  # cleaned; what goes to Rasa
    inbound: InboundMessage
    tries: int = 1  # claims of the message so far, this one included
    retried: bool = False  # claimed again after an earlier try left it unanswered


class Router:
    """One per gateway process.

    `answer_within_seconds` bounds how long a stored message may stay unanswered before it
    is claimed again (by the sweeper or the platform's retry); `answer_max_tries` is how many
    claims a message gets before the citizen is told sorry and handed to an agent.
    """

    def __init__(
        self,
        db: Database,
        bus: Bus,
        rasa: RasaClient,
        channels: ChannelRegistry,
        interceptors: Sequence[Interceptor] = (),
        *,
        answer_within_seconds: float = 60.0,
        answer_max_tries: int = 3,
    ) -> None:
        self.db = db
        self.bus = bus
        self.rasa = rasa
        self.channels = channels
        self.interceptors = list(interceptors)
        self.answer_within = timedelta(seconds=answer_within_seconds)
        self.answer_max_tries = answer_max_tries
        self._late: set[asyncio.Task[None]] = set()

    async def handle(self, msg: InboundMessage) -> list[Reply]:
        """Store the message, then answer it (or pass it to the agent who owns the chat).

        Returns the replies to render in the channel's own response; [] when a human owns the
        conversation or the message is a retry of one answered (or being answered) already.
        """
        turn = await self.receive(msg)
        return await self.answer(turn) if turn is not None else []

    async def receive(self, msg: InboundMessage) -> Turn | None:
        """Store the message, claimed by this process; the caller then `answer`s the turn.

        A platform's retry of a message stored earlier but left unanswered (its process died
        or failed after storing it) is claimed again and answered now, not dropped; None for
        an empty message or a retry of one answered, or being answered, already.

        A message with attachments is stored with a label per attachment (`[图片]` …) and the
        attachments themselves in its payload; the bot does not read it, it answers MEDIA_NOTICE.
        """
        text = clean_text(msg.text)
        if not text and not msg.attachments:
            return None
        stored_text = transcript_text(text, msg.attachments) if msg.attachments else text
        async with self.db.session() as s:
            conv = await conversations.ensure_conversation(
                s, msg.channel, msg.external_id, msg.metadata.get("display_name")
            )
        async with self.db.session() as s:
            stored = await conversations.store_inbound(
                s,
                conv,
                stored_text,
                msg.message_id,
                {"attachments": list(msg.attachments)} if msg.attachments else None,
            )
            if stored is None:
                earlier = (
                    await conversations.stored_inbound(s, conv.id, msg.message_id)
                    if msg.message_id
                    else None
                )
                tries = (
                    await claims.claim(s, earlier.id, self._stale_before())
                    if earlier is not None
                    else None
                )
                if earlier is None or tries is None:
                    return None
                log.info("retry of unanswered message %s claimed (try %s)", earlier.id, tries)
                return Turn(conv, earlier.id, text, msg, tries, retried=True)
        await self._announce(conv, stored)
        return Turn(conv, stored.id, text, msg)

    async def answer(self, turn: Turn) -> list[Reply]:
        """Answer a claimed turn (one at a time per conversation). If answering fails, the
        claim is released, so the platform's retry or the sweeper answers it."""
        replies, _ = await self._answer_locked(turn)
        return replies

    async def rerun(self, message_id: int) -> bool:
        """Claim and answer a message left unanswered, delivering the answer through the
        channel's push path; False if it was not this process's to answer (answered
        meanwhile, or claimed by another process)."""
        async with self.db.session() as s:
            tries = await claims.claim(s, message_id, self._stale_before())
            if tries is None:
                return False
            stored = await s.get_one(Message, message_id)
            conv = await s.get_one(Conversation, stored.conversation_id)
            identity = await conversations.identity_of(s, conv)
        media = tuple((stored.payload or {}).get("attachments") or ())
        inbound = InboundMessage(
            channel=identity.channel,
            external_id=identity.external_id,
            text=stored.text,
            message_id=stored.channel_message_id,
            attachments=media,
        )
        turn = Turn(conv, message_id, clean_text(stored.text), inbound, tries, retried=True)
        replies, reply_ids = await self._answer_locked(turn)
        if replies:
            await self._send(identity.channel, identity.external_id, reply_ids, replies)
        return True

    def _stale_before(self) -> datetime:
        return utcnow() - self.answer_within

    async def _answer_locked(self, turn: Turn) -> tuple[list[Reply], list[int]]:
        conv = turn.conversation
        try:
            async with self.bus.lock(f"conv:{conv.id}", ttl=30, wait=30):
                return await self._answer(turn)
        except Exception:
            try:
                async with self.db.session() as s:
                    await claims.release(s, turn.message_id)
            except Exception:
                log.warning("claim on message %s not released", turn.message_id)
            raise

    async def _answer(self, turn: Turn) -> tuple[list[Reply], list[int]]:
        conv, msg, text = turn.conversation, turn.inbound, turn.text
        answered = (turn.message_id, "processed")
        async with self.db.session() as s:
            owner = await handoffs.open_for(s, conv.id)
            if owner is not None and wants_to_leave_message(text):
                # Waiting citizen chose to leave a message (button or typed 留言 / 登记工单):
                # back to the bot, which starts the work-order form.
                if await leave_message_instead(s, owner):
                    owner = None
                    text = LEAVE_MESSAGE
            if owner is not None:
                (await s.get_one(Message, turn.message_id)).status = "processed"
                return [], []
        if turn.tries > self.answer_max_tries:
            log.warning("message %s unanswered after %s tries", turn.message_id, turn.tries - 1)
            return await self._give_up(conv, turn.message_id)
        if msg.attachments:
            return [MEDIA_NOTICE], await self._store_replies(
                conv, [MEDIA_NOTICE], answered=answered
            )
        for intercept in self.interceptors:
            replies = await intercept(msg)
            if replies is not None:
                return replies, await self._store_replies(conv, replies, answered=answered)
        if turn.retried:
            # Rasa may have completed the turn before the process that sent it died.
            done = await self.rasa.replies_to(conv.public_id, turn.message_id)
            if done is not None:
                return done, await self._store_replies(conv, done, answered=answered)
        return await self._ask_bot(conv, turn.message_id, text, msg)

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
                if isinstance(exc, RasaTimeout):
                    exc.abandon()  # a welcome is not worth pushing late
                log.info("no welcome for conversation %s: %s", conv.public_id, exc)
                return []
            await self._store_replies(conv, replies)
        return replies

    async def _ask_bot(
        self, conv: Conversation, message_id: int, text: str, msg: InboundMessage
    ) -> tuple[list[Reply], list[int]]:
        metadata = {"channel": msg.channel, MESSAGE_ID: message_id}
        try:
            # Rasa (and its tracker) sees phone, ID and bank numbers masked; the action server
            # reads a number it needs from the stored message `MESSAGE_ID`.
            replies = await self.rasa.send(conv.public_id, mask_text(for_nlu(text)), metadata)
        except RasaUnavailable as exc:
            log.warning("rasa unavailable for conversation %s: %s", conv.public_id, exc)
            if isinstance(exc, RasaTimeout):
                self._spawn(self._late_replies(conv.id, message_id, exc.pending))
            return await self._give_up(conv, message_id)
        return replies, await self._store_replies(conv, replies, answered=(message_id, "processed"))

    async def _give_up(self, conv: Conversation, message_id: int) -> tuple[list[Reply], list[int]]:
        """Say sorry and hand the conversation to an agent; the message is `failed`."""
        async with self.db.session() as s:
            c = await s.get_one(Conversation, conv.id)
            await handoffs.request(s, c, "rasa_down", {"last_text_id": message_id})
        return [APOLOGY], await self._store_replies(
            conv, [APOLOGY], answered=(message_id, "failed")
        )

    async def _late_replies(
        self, conversation_id: int, message_id: int, pending: asyncio.Task[list[Reply]]
    ) -> None:
        """A turn that timed out still runs in Rasa (a form may be filing an order): when it
        completes, the citizen gets its replies (the tracking number …) through the push path."""
        try:
            replies = await pending
        except RasaUnavailable as exc:
            log.info("late turn of message %s did not complete: %s", message_id, exc)
            return
        log.info("late turn of message %s completed; pushing its replies", message_id)
        await self.push(conversation_id, replies, key=f"late:{message_id}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def drain(self, *, cancel: bool = False) -> None:
        """Wait for (or cancel) late turns still running (shutdown and tests)."""
        while self._late:
            if cancel:
                for task in self._late:
                    task.cancel()
            await asyncio.gather(*list(self._late), return_exceptions=True)

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
        outcome = await self._send(identity.channel, identity.external_id, stored, replies)
        if again and outcome is Delivery.DELIVERED:
            await self._delivered(stored)
        return outcome

    async def _send(
        self, channel: str, external_id: str, stored: Sequence[int], replies: Sequence[Reply]
    ) -> Delivery:
        """Deliver replies stored as `stored` through the channel's adapter."""
        adapter = self.channels.get(channel)
        if adapter is None:
            await self._undelivered(stored, f"channel {channel} is not configured")
            return Delivery.FAILED
        try:
            await adapter.send(external_id, replies)
        except DeliveryError as exc:
            log.warning(
                "delivery to %s failed%s: %s",
                channel,
                " (may pass later)" if exc.retry else "",
                exc,
            )
            await self._undelivered(stored, str(exc))
            return Delivery.RETRY if exc.retry else Delivery.FAILED
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
        """Tell live consoles (and other tabs of the widget) about a new message. Best effort:
        with the bus down the message is stored all the same, and consoles reload it."""
        try:
            await self._publish(conv, msg)
        except Exception as exc:
            log.warning("message %s not announced to consoles: %s", msg.id, type(exc).__name__)

    async def _publish(self, conv: Conversation, msg: Message) -> None:
        await self.bus.publish(
            CONSOLE_TOPIC,
            {
                "type": "message",
                "conversation": conv.public_id,
                "message": conversations.message_json(msg),
            },
        )
