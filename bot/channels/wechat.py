"""WeChat Official Account (公众号) channel: `GET/POST /webhooks/wechat`.

Every request is signature-checked. Without an EncodingAESKey the account runs in plaintext
mode; with one, only AES safe-mode posts (`encrypt_type=aes`, `msg_signature` over the
ciphertext) are accepted, since a plaintext post's signature does not cover its body. A
(timestamp, nonce) pair is remembered for the timestamp window and refused with another message.
Each turn is computed once however often WeChat retries it (dedupe on FromUserName + MsgId, or
FromUserName + CreateTime + Event + EventKey for events, through the bus). An answer ready
within `wechat_reply_budget` seconds is the passive reply of the request WeChat is still
waiting on; a later answer is sent through the customer-service API, and the request is
answered `success` so WeChat neither retries nor shows an error to the citizen.

Delivery of a turn's answer is claimed once (`wechat:sent:<turn>`), so a citizen sees it once:
either passively by the newest waiting request, or, when every request has given up, by the
customer-service API.

Requests whose `timestamp` is further than `wechat_timestamp_window` seconds from our clock are
refused (403), signed or not: a captured request cannot be replayed later. Pictures, voice
without recognition, video, locations and links are stored as attachments (see
bot/channels/attachments.py) and answered by the router. Status pushes that WeChat refuses
because the 48-hour window is closed go out as a template message (bot/channels/wechat_template.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import unicodedata
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.channels import attachments
from bot.channels.attachments import Attachment, attachment, coordinate
from bot.channels.base import DeliveryError
from bot.channels.wechat_api import TRANSIENT_ERRORS, WeChatAPI, WeChatAPIError
from bot.channels.wechat_protocol import (
    ProtocolError,
    WeChatCipher,
    check_signature,
    parse_xml,
    render_encrypted,
    render_text,
)
from bot.channels.wechat_template import StatusTemplate
from bot.keys import BUS, CHANNELS, DB, HTTP, ROUTER, SETTINGS
from bot.messages import Button, InboundMessage, Reply, StatusNotice
from bot.settings import Settings
from store import conversations
from store.bus import Bus
from store.models import ChannelIdentity

log = logging.getLogger(__name__)

CHANNEL = "wechat"
PATH = "/webhooks/wechat"
SUCCESS = "success"

# Menu `key`s configured in the 公众号 console (Event=CLICK) → what the citizen "says".
MENU_MESSAGES: dict[str, str] = {
    "FAQ_SI": "社保政策咨询",
    "FAQ_MEDICAL": "医保政策咨询",
    "FAQ_HOUSING_FUND": "公积金政策咨询",
    "FAQ_BUSINESS": "企业开办咨询",
    "REPORT": "我要反映问题",
    "TRACK": "查询工单进度",
    "HUMAN": "转人工",
}
WELCOME_TEXT = "你好"  # a subscribe event reaches the dialogue as a greeting
ONLY_TEXT = "目前仅支持文字消息，请您直接输入文字描述您的问题，谢谢。"
UNKNOWN_MENU = "抱歉，该菜单暂不可用，请您直接输入文字描述您的问题，谢谢。"

TURN_TTL = 300.0  # how long a turn's dedupe key and answer live
CHOICES_TTL = 86400.0  # how long "reply 1, 2, 3" keeps meaning the last offered buttons
POLL = 0.05
PENDING = "pending"
# The customer-service API refuses because the 48 h window is closed (45015) or its quota of
# messages per citizen message is used up (45047): a status push then needs a template.
OUT_OF_WINDOW = frozenset({45015, 45047})


class WeChatDeliveryError(DeliveryError):
    """WeChat refused a message; `errcode` tells why (45015: outside the 48 h window).

    Worth retrying (`retry`) only when WeChat was busy (-1) or not reached (-2: transport
    error, HTTP 5xx); 43004 (unsubscribed), 40003 (bad openid) and the rest are permanent.
    """

    def __init__(self, errcode: int, message: str) -> None:
        super().__init__(message, retry=errcode in TRANSIENT_ERRORS)
        self.errcode = errcode


def render_replies(replies: Sequence[Reply]) -> tuple[str, tuple[Button, ...]]:
    """Merge replies into one text: buttons as a numbered list, links appended as text.

    Also returns the buttons the numbers refer to (those of the last reply that has buttons).
    """
    parts: list[str] = []
    choices: tuple[Button, ...] = ()
    for reply in replies:
        part = reply.as_numbered_text()
        if reply.link:
            part = f"{part}\n{reply.link}" if part else reply.link
        if part:
            parts.append(part)
        if reply.buttons:
            choices = reply.buttons
    return "\n\n".join(parts), choices


def turn_key(msg: dict[str, str]) -> str:
    """The dedupe key of one inbound message or event (also the stored channel_message_id).

    A MsgId is unique per follower only, so messages are keyed by (openid, MsgId)."""
    if msg.get("MsgType", "").lower() != "event" and msg.get("MsgId"):
        return f"msg:{msg.get('FromUserName', '')}:{msg['MsgId']}"
    raw = "|".join(
        msg.get(k, "") for k in ("FromUserName", "CreateTime", "MsgType", "Event", "EventKey")
    )
    return "evt:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def mask_openid(openid: str) -> str:
    """An openid as logs show it: `oAbC****wxYz`."""
    return f"{openid[:4]}****{openid[-4:]}" if len(openid) > 12 else "****"


def inbound_attachment(kind: str, msg: dict[str, str]) -> Attachment | None:
    """The attachment of a media, location or link message; None for other message types.

    Only WeChat's references are kept (MediaId is valid for 3 days, PicUrl longer); nothing is
    downloaded.
    """
    if kind == "image":
        return attachment(attachments.IMAGE, media_id=msg.get("MediaId"), url=msg.get("PicUrl"))
    if kind == "voice":
        return attachment(attachments.VOICE, media_id=msg.get("MediaId"), format=msg.get("Format"))
    if kind in ("video", "shortvideo"):
        return attachment(
            attachments.VIDEO,
            media_id=msg.get("MediaId"),
            thumb_media_id=msg.get("ThumbMediaId"),
        )
    if kind == "location":
        return attachment(
            attachments.LOCATION,
            label=msg.get("Label"),
            lat=coordinate(msg.get("Location_X")),
            lng=coordinate(msg.get("Location_Y")),
        )
    if kind == "link":
        return attachment(
            attachments.LINK,
            title=msg.get("Title"),
            description=msg.get("Description"),
            url=msg.get("Url"),
        )
    return None


class WeChatAdapter:
    """Delivers replies outside a request through the customer-service API; a status push
    the API refuses because the 48 h window is closed goes out as a template message."""

    name = CHANNEL

    def __init__(self, api: WeChatAPI, bus: Bus, template: StatusTemplate | None = None) -> None:
        self.api = api
        self.bus = bus
        self.template = template

    async def send(self, external_id: str, replies: Sequence[Reply]) -> None:
        """Send `replies` to the openid as one text message; DeliveryError if WeChat refuses.

        When the window is closed and a reply carries a `StatusNotice`, the notice is sent as a
        template message instead (DeliveryError if no template is configured).
        """
        text, choices = render_replies(replies)
        if not text:
            return
        try:
            await self.send_text(external_id, text)
        except WeChatDeliveryError as exc:
            notice = next((r.notice for r in replies if r.notice is not None), None)
            if exc.errcode not in OUT_OF_WINDOW or notice is None:
                raise
            await self.send_notice(external_id, notice, exc.errcode)
            return
        await remember_choices(self.bus, external_id, choices)

    async def send_notice(self, openid: str, notice: StatusNotice, errcode: int) -> None:
        """A status push as the configured template message, after `errcode` refused the text."""
        if self.template is None:
            log.warning(
                "status of %s not delivered to wechat user %s: customer-service window closed "
                "(errcode %s) and WECHAT_TEMPLATE_STATUS_ID is unset",
                notice.tracking_no,
                mask_openid(openid),
                errcode,
            )
            raise WeChatDeliveryError(
                errcode, f"errcode {errcode}: window closed and no status template configured"
            )
        await self.send_template(
            openid, self.template.template_id, self.template.data(notice), notice.url
        )
        log.info(
            "status of %s sent to wechat user %s as a template message (errcode %s)",
            notice.tracking_no,
            mask_openid(openid),
            errcode,
        )

    async def send_text(self, openid: str, text: str) -> None:
        """One customer-service text message."""
        try:
            await self.api.send_text(openid, text)
        except WeChatAPIError as exc:
            raise WeChatDeliveryError(exc.errcode, str(exc)) from exc

    async def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> None:
        """A template message (status pushes outside the 48 h window)."""
        try:
            await self.api.send_template(openid, template_id, data, url)
        except WeChatAPIError as exc:
            raise WeChatDeliveryError(exc.errcode, str(exc)) from exc


async def remember_choices(bus: Bus, openid: str, choices: Sequence[Button]) -> None:
    """Keep the offered buttons so a later "1" means the first of them."""
    if choices:
        payloads = [b.payload for b in choices]
        await bus.set(f"wechat:choices:{openid}", json.dumps(payloads), ttl=CHOICES_TTL)


async def resolve_choice(bus: Bus, openid: str, text: str) -> str:
    """A bare number picks one of the last offered buttons; anything else stays as typed."""
    number = unicodedata.normalize("NFKC", text).strip()
    if not number.isdigit() or len(number) > 2:
        return text
    raw = await bus.get(f"wechat:choices:{openid}")
    payloads = json.loads(raw) if raw else []
    index = int(number) - 1
    return payloads[index] if 0 <= index < len(payloads) else text


class WeChatChannel:
    """Per-process state of the channel: in-flight turns and their background work."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        settings: Settings = app[SETTINGS]
        self.settings = settings
        self.token = settings.wechat_token.get_secret_value()
        aes_key = settings.wechat_encoding_aes_key.get_secret_value()
        self.cipher = WeChatCipher(aes_key, settings.wechat_app_id) if aes_key else None
        self.adapter: WeChatAdapter | None = None
        self._ready: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bus(self) -> Bus:
        return self.app[BUS]

    # ---- HTTP -------------------------------------------------------------------------------

    def _refused(self, request: web.Request) -> web.Response | None:
        """403 unless the signature is right and the timestamp is inside the window."""
        q = request.query
        timestamp = q.get("timestamp", "")
        if not check_signature(self.token, q.get("signature", ""), timestamp, q.get("nonce", "")):
            return web.Response(status=403, text="invalid signature")
        window = self.settings.wechat_timestamp_window
        try:
            skew = time.time() - int(timestamp)
        except ValueError:
            log.warning("wechat %s refused: timestamp is not a number", request.method)
            return web.Response(status=403, text="invalid timestamp")
        if abs(skew) > window:
            log.warning(
                "wechat %s refused: timestamp is %+.0f s off our clock (window %.0f s): "
                "a replayed request or a wrong clock",
                request.method,
                skew,
                window,
            )
            return web.Response(status=403, text="stale timestamp")
        return None

    async def _fresh_nonce(self, timestamp: str, nonce: str, turn: str) -> bool:
        """Remember each (timestamp, nonce) for the timestamp window with the message (turn
        key) it came with; False when it comes back with another message. The same message
        again is WeChat's own retry (or a replay of it), which the turn's dedupe answers
        once; comparing messages, not bytes, keeps a retry encrypted afresh acceptable."""
        digest = hashlib.sha256(turn.encode()).hexdigest()
        key = f"wechat:nonce:{timestamp}:{nonce}"
        ttl = 2 * self.settings.wechat_timestamp_window
        if await self.bus.set_nx(key, digest, ttl):
            return True
        return await self.bus.get(key) == digest

    async def verify(self, request: web.Request) -> web.Response:
        """URL verification: echo `echostr` verbatim when the signature is right."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        return web.Response(text=request.query.get("echostr", ""), content_type="text/plain")

    async def receive(self, request: web.Request) -> web.Response:
        """One message or event from WeChat; answers a passive reply or `success`."""
        deadline = asyncio.get_running_loop().time() + self.settings.wechat_reply_budget
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.read()  # larger than max_body_bytes → 413 before we see it
        q = request.query
        encrypted = q.get("encrypt_type", "raw").lower() == "aes"
        if self.cipher is not None and not encrypted:
            # In plaintext mode the signature does not cover the body: with a key configured,
            # only safe-mode posts (msg_signature over the ciphertext) are believed.
            log.warning("wechat POST refused: plaintext while safe mode is configured")
            return web.Response(status=403, text="safe mode required")
        try:
            if encrypted:
                if self.cipher is None:
                    return web.Response(status=400, text="safe mode is not configured")
                envelope = parse_xml(body)
                ciphertext = envelope.get("Encrypt", "")
                if not check_signature(
                    self.token,
                    q.get("msg_signature", ""),
                    q.get("timestamp", ""),
                    q.get("nonce", ""),
                    ciphertext,
                ):
                    return web.Response(status=403, text="invalid msg_signature")
                msg = parse_xml(self.cipher.decrypt(ciphertext))
            else:
                msg = parse_xml(body)
        except ProtocolError as exc:
            return web.Response(status=400, text=str(exc))
        if not msg.get("FromUserName") or not msg.get("MsgType"):
            return web.Response(status=400, text="FromUserName and MsgType are required")
        if not await self._fresh_nonce(q.get("timestamp", ""), q.get("nonce", ""), turn_key(msg)):
            log.warning("wechat POST refused: nonce reused for another message (a replay)")
            return web.Response(status=403, text="nonce reused")
        answer = await self.process(msg, deadline)
        if not answer:
            return web.Response(text=SUCCESS, content_type="text/plain")
        xml = render_text(msg["FromUserName"], msg.get("ToUserName", ""), answer)
        if encrypted and self.cipher is not None:
            xml = render_encrypted(self.token, self.cipher, xml)
        return web.Response(text=xml, content_type="application/xml")

    # ---- what a message means ----------------------------------------------------------------

    async def process(self, msg: dict[str, str], deadline: float) -> str | None:
        """The passive reply text for one message or event, or None for `success`."""
        openid = msg["FromUserName"]
        kind = msg["MsgType"].lower()
        metadata: dict[str, Any] = {"msg_type": kind}
        media: tuple[Attachment, ...] = ()
        if kind == "event":
            event = msg.get("Event", "").lower()
            metadata["event"] = event
            if event == "unsubscribe":
                await self._set_subscribed(openid, False)
                return None
            if event == "subscribe":
                await self._set_subscribed(openid, True)
                text = WELCOME_TEXT
            elif event == "click":
                menu_text = MENU_MESSAGES.get(msg.get("EventKey", ""))
                if menu_text is None:
                    return UNKNOWN_MENU
                text = menu_text
            else:
                return None  # VIEW, SCAN, LOCATION, template receipts …: nothing to say
        elif kind == "text":
            text = await resolve_choice(self.bus, openid, msg.get("Content", ""))
        elif kind == "voice" and msg.get("Recognition", "").strip():
            text = msg["Recognition"].strip()
        else:
            found = inbound_attachment(kind, msg)
            if found is None:
                return ONLY_TEXT
            text, media = "", (found,)
        inbound = InboundMessage(
            channel=CHANNEL,
            external_id=openid,
            text=text,
            message_id=turn_key(msg),
            attachments=media,
            metadata=metadata,
        )
        return await self._turn(inbound, deadline)

    async def _set_subscribed(self, openid: str, subscribed: bool) -> None:
        async with self.app[DB].session() as s:
            if subscribed:
                await conversations.ensure_conversation(s, CHANNEL, openid)
            stmt = select(ChannelIdentity).where(
                ChannelIdentity.channel == CHANNEL, ChannelIdentity.external_id == openid
            )
            identity = (await s.execute(stmt)).scalar_one_or_none()
            if identity is not None:
                identity.subscribed = subscribed

    # ---- one turn, computed once -------------------------------------------------------------

    async def _turn(self, inbound: InboundMessage, deadline: float) -> str | None:
        turn = inbound.message_id or ""
        bus = self.bus
        if await bus.set_nx(f"wechat:turn:{turn}", PENDING, TURN_TTL):
            self._ready[turn] = asyncio.Event()
            self._spawn(self._compute(inbound))
        attempt = await bus.incr(f"wechat:tries:{turn}", TURN_TTL)
        answer = await self._wait(turn, deadline)
        if answer is None and await bus.get(f"wechat:turn:{turn}") is None:
            return None  # the computation failed: WeChat's retry computes it again
        newest = attempt >= int(await bus.get(f"wechat:tries:{turn}") or 0)
        if answer and newest and await bus.set_nx(f"wechat:sent:{turn}", "passive", TURN_TTL):
            return answer
        await bus.incr(f"wechat:left:{turn}", TURN_TTL)
        await self._finish(turn, inbound.external_id)
        return None

    async def _wait(self, turn: str, deadline: float) -> str | None:
        """The turn's answer once computed ("" when there is nothing to say); None on timeout."""
        loop = asyncio.get_running_loop()
        while True:
            raw = await self.bus.get(f"wechat:turn:{turn}")
            if raw is None:
                return None  # the computation failed; WeChat's retry will start it again
            if raw != PENDING:
                return str(json.loads(raw)["text"])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            step = min(POLL, remaining)
            ready = self._ready.get(turn)
            if ready is None:
                await asyncio.sleep(step)
            else:
                try:
                    await asyncio.wait_for(ready.wait(), step)
                except TimeoutError:
                    pass

    async def _compute(self, inbound: InboundMessage) -> None:
        turn = inbound.message_id or ""
        try:
            replies = await self.app[ROUTER].handle(inbound)
            text, choices = render_replies(replies)
            await remember_choices(self.bus, inbound.external_id, choices)
            await self.bus.set(f"wechat:turn:{turn}", json.dumps({"text": text}), TURN_TTL)
        except Exception:
            log.exception("wechat turn %s failed; a retry will compute it again", turn)
            for name in ("turn", "tries", "left"):
                await self.bus.delete(f"wechat:{name}:{turn}")
            return
        finally:
            ready = self._ready.pop(turn, None)
            if ready is not None:
                ready.set()
        await self._finish(turn, inbound.external_id)

    async def _finish(self, turn: str, openid: str) -> None:
        """Send the answer through the customer-service API once no request waits for it."""
        raw = await self.bus.get(f"wechat:turn:{turn}")
        if raw is None or raw == PENDING:
            return
        text = str(json.loads(raw)["text"])
        tries = int(await self.bus.get(f"wechat:tries:{turn}") or 0)
        left = int(await self.bus.get(f"wechat:left:{turn}") or 0)
        if not text or left < tries:
            return  # nothing to say, or a waiting request will reply passively
        if not await self.bus.set_nx(f"wechat:sent:{turn}", "custom", TURN_TTL):
            return
        if self.adapter is None:
            log.warning("wechat answer missed the reply window and no AppID/AppSecret is set")
            return
        try:
            await self.adapter.send_text(openid, text)
        except DeliveryError as exc:
            log.warning("late wechat answer for turn %s not delivered: %s", turn, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for turns still being computed (shutdown and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


WECHAT = web.AppKey("wechat", WeChatChannel)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    channel = app[WECHAT]
    settings = channel.settings
    secret = settings.wechat_app_secret.get_secret_value()
    if settings.wechat_app_id and secret:
        api = WeChatAPI(
            app[HTTP], app[BUS], settings.wechat_api_base, settings.wechat_app_id, secret
        )
        template = StatusTemplate.from_settings(
            settings.wechat_template_status_id, settings.wechat_template_status_fields
        )
        channel.adapter = WeChatAdapter(api, app[BUS], template)
        app[CHANNELS].register(channel.adapter)
    else:
        log.warning("WECHAT_APP_ID/WECHAT_APP_SECRET unset: only passive replies are possible")
    yield
    await channel.drain()


def setup(app: web.Application) -> None:
    """Register the WeChat routes when WECHAT_TOKEN is set."""
    settings = app[SETTINGS]
    if not settings.wechat_token.get_secret_value():
        return
    channel = WeChatChannel(app)
    app[WECHAT] = channel
    app.router.add_get(PATH, channel.verify)
    app.router.add_post(PATH, channel.receive)
    app.cleanup_ctx.append(_lifecycle)
