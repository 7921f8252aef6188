"""Telegram channel: python-telegram-bot inside the gateway's own aiohttp app.

Telegram POSTs updates to `/webhooks/telegram` (custom-webhook pattern: no second server, no
polling). The handler checks the secret-token header in constant time, stores the update's message
(deduped on `update_id` by the store), answers 200 only then, and answers the citizen in a
background task: an update is never acknowledged before it is stored, and a database error
answers 503 so Telegram delivers it again. Replies are
sent with PTB through an `AIORateLimiter`, which also waits out `RetryAfter`.

Telegram is blocked in mainland China, so this channel is optional: it is registered only
when TELEGRAM_TOKEN is set, and a gateway that cannot reach the Bot API still starts (the
webhook answers 503, so Telegram retries, until the Bot API has been reached).

Photos, documents, voice, audio, video and locations are stored as attachments (their
`file_id`, nothing downloaded; bot/channels/attachments.py) and answered by the router; other
non-text messages (stickers, contacts, polls …) get a notice that only text is understood.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import update as sql_update
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application

from bot.channels import attachments
from bot.channels.attachments import Attachment, attachment
from bot.channels.base import DeliveryError
from bot.keys import BUS, CHANNELS, DB, ROUTER, SETTINGS
from bot.messages import InboundMessage, Reply
from bot.router import Turn
from store.models import ChannelIdentity

log = logging.getLogger(__name__)

CHANNEL = "telegram"
PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
ALLOWED_UPDATES = ["message", "callback_query"]
CALLBACK_TTL = 30 * 24 * 3600  # how long a button with a long payload keeps working
MAX_CALLBACK_BYTES = 64
MAX_TEXT = 4096
RETRY_DELAYS = (5, 15, 30, 60, 120, 300)

ONLY_TEXT = "抱歉，目前仅支持文字消息，请用文字描述您的问题。"
BUTTON_EXPIRED = "抱歉，这个选项已失效，请直接输入您的问题。"
CHOOSE = "请选择："
OPEN_LINK = "打开链接"


def message_attachment(message: Message) -> Attachment | None:
    """The attachment of a photo, document, voice, audio, video or location message."""
    if message.photo:
        largest = message.photo[-1]  # Telegram lists the sizes smallest first
        return attachment(
            attachments.IMAGE,
            media_id=largest.file_id,
            file_unique_id=largest.file_unique_id,
            width=largest.width,
            height=largest.height,
        )
    if message.document is not None:
        doc = message.document
        return attachment(
            attachments.FILE,
            media_id=doc.file_id,
            file_name=doc.file_name,
            mime_type=doc.mime_type,
        )
    for kind, media in (
        (attachments.VOICE, message.voice),
        (attachments.VOICE, message.audio),
        (attachments.VIDEO, message.video),
        (attachments.VIDEO, message.video_note),
    ):
        if media is not None:
            return attachment(
                kind, media_id=media.file_id, mime_type=getattr(media, "mime_type", None)
            )
    if message.location is not None:
        venue = message.venue
        label = " ".join(p for p in (venue.title, venue.address) if p) if venue else None
        return attachment(
            attachments.LOCATION,
            label=label,
            lat=message.location.latitude,
            lng=message.location.longitude,
        )
    return None


def transient(exc: TelegramError) -> bool:
    """Whether sending again later may succeed: network errors, timeouts and Telegram's 5xx
    (PTB's NetworkError, TimedOut) and flood limits (RetryAfter). A BadRequest (a NetworkError
    subclass in PTB), Forbidden, an invalid token or anything else is permanent."""
    if isinstance(exc, BadRequest):
        return False
    return isinstance(exc, NetworkError | RetryAfter)


class TelegramChannel:
    """The Telegram ChannelAdapter plus the PTB Application behind it (one per gateway)."""

    name = CHANNEL

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.application: Application | None = None
        self.ready = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry: asyncio.Task[None] | None = None

    @property
    def bot_id(self) -> str:
        """The numeric part of the token: keeps dedupe keys of two bots apart."""
        return self.app[SETTINGS].telegram_token.get_secret_value().split(":", 1)[0]

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Build and start PTB; if the Bot API is unreachable, keep retrying in the background."""
        settings = self.app[SETTINGS]
        self.application = (
            Application.builder()
            .token(settings.telegram_token.get_secret_value())
            .updater(None)
            .base_url(settings.telegram_api_base)
            .rate_limiter(AIORateLimiter(max_retries=2))
            .build()
        )
        if not settings.telegram_secret_token.get_secret_value():
            log.error("TELEGRAM_SECRET_TOKEN is not set: every Telegram webhook call is refused")
        if not await self._connect():
            self._retry = asyncio.create_task(self._connect_later())

    async def _connect(self) -> bool:
        assert self.application is not None
        try:
            await self.application.initialize()  # calls getMe
            if not self.application.running:
                await self.application.start()
        except TelegramError as exc:
            log.warning("Telegram Bot API not reachable yet: %s", exc)
            return False
        self.ready = True
        url = self.app[SETTINGS].telegram_webhook_url
        if url:
            try:
                await self.application.bot.set_webhook(
                    url,
                    secret_token=self.app[SETTINGS].telegram_secret_token.get_secret_value(),
                    allowed_updates=ALLOWED_UPDATES,
                )
            except TelegramError as exc:
                log.error("setWebhook failed: %s", exc)
        return True

    async def _connect_later(self) -> None:
        for attempt in range(10_000):
            await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            if await self._connect():
                return

    async def stop(self) -> None:
        """Finish updates in progress, then stop PTB."""
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)
        await self.drain()
        self.ready = False
        if self.application is not None:
            if self.application.running:
                await self.application.stop()
            await self.application.shutdown()

    async def drain(self) -> None:
        """Wait until every update received so far has been processed (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background and keep a reference until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- outbound ----------------------------------------------------------------------------

    async def send(self, external_id: str, replies: Sequence[Reply]) -> None:
        """Deliver replies to a chat; DeliveryError if Telegram refuses or is unreachable.

        A citizen who blocked the bot is marked unsubscribed, so pushes stop trying. The error's
        `retry` is True when Telegram could not be reached, timed out, answered 5xx or is still
        flood-limiting after the rate limiter's own retries (see `transient`).
        """
        if not self.ready or self.application is None:
            raise DeliveryError("telegram is not connected", retry=True)
        bot = self.application.bot
        try:
            for reply in replies:
                for text, markup in await self._render(reply):
                    await bot.send_message(chat_id=int(external_id), text=text, reply_markup=markup)
        except Forbidden as exc:
            await self._set_subscribed(external_id, False)
            raise DeliveryError(f"telegram refused: {exc.message}") from exc
        except TelegramError as exc:
            raise DeliveryError(f"telegram error: {exc.message}", retry=transient(exc)) from exc

    async def _render(self, reply: Reply) -> list[tuple[str, InlineKeyboardMarkup | None]]:
        """Text chunks of at most 4096 characters; the keyboard goes with the last one."""
        text = reply.text.strip()
        rows: list[list[InlineKeyboardButton]] = []
        for button in reply.buttons:
            title = button.title.strip() or button.payload
            data = await self._callback_data(button.payload)
            rows.append([InlineKeyboardButton(title, callback_data=data)])
        if reply.link:
            if reply.link.startswith("https://"):
                rows.append([InlineKeyboardButton(OPEN_LINK, url=reply.link)])
            else:  # Telegram refuses URL buttons to plain http and local hosts
                text = f"{text}\n{reply.link}" if text else reply.link
        if not text:
            if not rows:
                return []
            text = CHOOSE
        chunks = [text[i : i + MAX_TEXT] for i in range(0, len(text), MAX_TEXT)]
        markup = InlineKeyboardMarkup(rows) if rows else None
        return [(c, None) for c in chunks[:-1]] + [(chunks[-1], markup)]

    async def _callback_data(self, payload: str) -> str:
        """The payload itself if it fits in 64 bytes, else `k:<key>` of a copy on the bus."""
        if len(payload.encode()) <= MAX_CALLBACK_BYTES and payload and not payload.startswith("k:"):
            return payload
        key = secrets.token_urlsafe(9)
        await self.app[BUS].set(f"telegram:cb:{key}", payload, CALLBACK_TTL)
        return f"k:{key}"

    async def _payload(self, data: str | None) -> str | None:
        """Undo `_callback_data`; None when a stored payload has expired."""
        if not data:
            return None
        if data.startswith("k:"):
            return await self.app[BUS].get(f"telegram:cb:{data[2:]}")
        return data

    async def _set_subscribed(self, external_id: str, value: bool) -> None:
        async with self.app[DB].session() as s:
            await s.execute(
                sql_update(ChannelIdentity)
                .where(
                    ChannelIdentity.channel == CHANNEL,
                    ChannelIdentity.external_id == external_id,
                    ChannelIdentity.subscribed.is_not(value),
                )
                .values(subscribed=value)
            )

    # -- inbound -----------------------------------------------------------------------------

    async def accept(self, data: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        """Store the update's message (raises if it cannot be stored: the webhook then answers
        an error, so Telegram delivers the update again); returns the work left to do once the
        update is acknowledged (answering it), or None."""
        assert self.application is not None
        update = Update.de_json(data, self.application.bot)
        if update.callback_query is not None:
            return await self._accept_callback(update)
        if update.message is not None:
            return await self._accept_message(update)
        return None

    async def _accept_message(self, update: Update) -> Coroutine[Any, Any, None] | None:
        message = update.message
        assert message is not None
        chat = message.chat
        if chat.type != "private":  # replies may carry personal data: never into groups
            return None
        chat_id = str(chat.id)
        user = message.from_user
        name = user.first_name if user else None
        if message.text is None:
            media = message_attachment(message)
            if media is None:
                return self._send_quietly(chat_id, [Reply(ONLY_TEXT, sender="system")])
            return await self._receive(
                chat_id, message.caption or "", update.update_id, name, (media,)
            )
        text = message.text
        if text.split(maxsplit=1)[0] == "/start":  # Telegram's first-contact command
            text = "你好"
        return await self._receive(chat_id, text, update.update_id, name)

    async def _accept_callback(self, update: Update) -> Coroutine[Any, Any, None] | None:
        query = update.callback_query
        assert query is not None
        message = query.message
        chat = message.chat if message is not None else None
        if chat is not None and chat.type != "private":
            return None
        chat_id = str(chat.id if chat is not None else query.from_user.id)
        payload = await self._payload(query.data)
        if payload is None:
            return self._after_press(
                query.id,
                chat_id,
                None,
                self._send_quietly(chat_id, [Reply(BUTTON_EXPIRED, sender="system")]),
            )
        work = await self._receive(chat_id, payload, update.update_id, query.from_user.first_name)
        if work is None:
            return None  # a re-delivered press, answered already
        keyboard = message.message_id if message is not None else None
        return self._after_press(query.id, chat_id, keyboard, work)

    async def _after_press(
        self,
        query_id: str,
        chat_id: str,
        keyboard_message_id: int | None,
        then: Coroutine[Any, Any, None],
    ) -> None:
        """Stop the button's spinner, take the keyboard away (one press per keyboard), then
        answer the press."""
        assert self.application is not None
        bot = self.application.bot
        try:
            await bot.answer_callback_query(query_id)
        except TelegramError as exc:
            log.info("answerCallbackQuery failed: %s", exc)
        if keyboard_message_id is not None:
            try:
                await bot.edit_message_reply_markup(
                    chat_id=int(chat_id), message_id=keyboard_message_id, reply_markup=None
                )
            except TelegramError as exc:
                log.debug("editMessageReplyMarkup failed: %s", exc)
        await then

    async def _receive(
        self,
        chat_id: str,
        text: str,
        update_id: int,
        display_name: str | None,
        media: tuple[Attachment, ...] = (),
    ) -> Coroutine[Any, Any, None] | None:
        inbound = InboundMessage(
            channel=CHANNEL,
            external_id=chat_id,
            text=text,
            message_id=str(update_id),
            attachments=media,
            metadata={"display_name": display_name} if display_name else {},
        )
        turn = await self.app[ROUTER].receive(inbound)
        return self._answer(chat_id, turn) if turn is not None else None

    async def _answer(self, chat_id: str, turn: Turn) -> None:
        """Answer a stored message (in the background; errors are logged, never raised: a
        message left unanswered is answered by the sweeper)."""
        try:
            replies = await self.app[ROUTER].answer(turn)
            await self._set_subscribed(chat_id, True)  # writing again means they unblocked us
            if replies:
                await self._send_quietly(chat_id, replies)
        except Exception:
            log.exception("telegram message %s not answered", turn.message_id)

    async def _send_quietly(self, chat_id: str, replies: Sequence[Reply]) -> None:
        try:
            await self.send(chat_id, replies)
        except DeliveryError as exc:
            log.warning("telegram reply not delivered: %s", exc)


TELEGRAM = web.AppKey("telegram", TelegramChannel)


def _authorised(request: web.Request) -> bool:
    secret = request.app[SETTINGS].telegram_secret_token.get_secret_value()
    given = request.headers.get(SECRET_HEADER, "")
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


async def webhook(request: web.Request) -> web.Response:
    """`POST /webhooks/telegram`: check, store, answer 200, answer the citizen in the
    background. An update that cannot be stored is answered 503, so Telegram sends it again;
    a re-delivered update is stored once (and answered once) by the router."""
    if not _authorised(request):
        return web.json_response({"error": "invalid secret token"}, status=403)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "body must be JSON"}, status=400)
    update_id = body.get("update_id") if isinstance(body, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return web.json_response({"error": "body must be an update with update_id"}, status=400)
    channel = request.app[TELEGRAM]
    if not channel.ready:
        return web.json_response({"error": "telegram not connected yet"}, status=503)
    try:
        work = await channel.accept(body)
    except Exception:
        log.exception("telegram update %s not stored; Telegram will send it again", update_id)
        return web.json_response({"error": "not stored, send again"}, status=503)
    if work is not None:
        channel.spawn(work)
    return web.Response(status=200)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    channel = app[TELEGRAM]
    await channel.start()
    yield
    await channel.stop()


def setup(app: web.Application) -> None:
    """Register the Telegram webhook and adapter, only when TELEGRAM_TOKEN is set."""
    if not app[SETTINGS].telegram_token.get_secret_value():
        return
    channel = TelegramChannel(app)
    app[TELEGRAM] = channel
    app[CHANNELS].register(channel)
    app.router.add_post(PATH, webhook)
    app.cleanup_ctx.append(_lifecycle)
