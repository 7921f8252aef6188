"""The web chat widget's channel: `GET /ws/chat` (WebSocket), `/static/widget.js` and the demo page.

Protocol (JSON text frames, see docs/channels/web.md):

- client `{"type": "hello", "session": token | null}` first; the gateway mints the token when it
  is missing or unknown and answers `{"type": "session", "session", "history": [...]}`. A newly
  minted session's history holds the assistant's welcome (Rasa's answer to the greet intent,
  with its quick replies); a known session gets no second welcome on reconnect or reload.
- client `{"type": "message", "text", "client_id"}` and `{"type": "button", "title", "payload",
  "client_id"}`; `client_id` becomes the stored message id, so a resend is answered once.
- server `{"type": "typing", "on"}`, `{"type": "message", "from", "text", "buttons", "link", "id",
  "ts", "client_id"?}` and `{"type": "error", "text"}` (Chinese; the socket stays open).

Only sha256(token) is stored, as `ChannelIdentity.external_id`. Delivery reads from the store:
every open socket of a session keeps the id of the last message it was sent and is brought up to
date after each turn and each `Router.push` (which stores before it calls `send`). Other gateway
processes are poked through the bus topic "web" and do the same for the sockets they hold, so a
message reaches every tab exactly once and nothing is lost while no tab is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import select

from bot.client_address import limit_subject
from bot.keys import BUS, CHANNELS, DB, ROUTER, SETTINGS
from bot.messages import CLIENT_SUBJECT, InboundMessage, Reply
from bot.text import MAX_TEXT_CHARS, clean_text
from store import conversations, limits
from store.models import ChannelIdentity, Conversation, Message

log = logging.getLogger(__name__)

CHANNEL = "web"
BUS_TOPIC = "web"
HISTORY_LIMIT = 50
SYNC_BATCH = 200
MAX_FRAME_BYTES = 16 * 1024  # 2000 CJK characters escaped as \uXXXX still fit
MAX_TITLE_CHARS = 200
MAX_CLIENT_ID = 64
HEARTBEAT_SECONDS = 25.0
MINTED_TTL = 7 * 24 * 3600  # a token that never sent a message is forgotten after a week
RATE_LIMIT = 30  # messages per session per minute
# New sessions per client address per minute that get the assistant's welcome.
WELCOME_LIMIT = limits.Limit("web:welcome", max_attempts=20, window_seconds=60)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)

E_FORMAT = "消息格式有误，请刷新页面后重试。"
E_TYPE = "暂不支持该类型的消息。"
E_TOO_LONG = f"消息过长，请控制在{MAX_TEXT_CHARS}字以内。"
E_EMPTY = "请输入内容后再发送。"
E_NO_SESSION = "会话尚未建立，请稍候重试。"
E_TWICE = "会话已建立，无需重复连接。"
E_RATE = "您发送得太快了，请稍后再试。"
E_BUSY = "系统繁忙，请稍后再试。您的留言已保存。"


def hash_token(token: str) -> str:
    """What is stored for a session token: its sha256, hex (64 chars)."""
    return hashlib.sha256(token.encode()).hexdigest()


def safe_link(link: Any) -> str | None:
    """Only absolute http(s) links are passed to the browser."""
    if not isinstance(link, str):
        return None
    parts = urlsplit(link.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return link.strip()
    return None


def message_frame(msg: Message, titles: dict[str, str]) -> dict[str, Any]:
    """A stored message as the widget renders it. A citizen's button choice is stored as its
    payload (that is what Rasa saw); the widget shows the button's title instead."""
    payload = msg.payload or {}
    sender = msg.sender if msg.sender in ("citizen", "bot", "agent", "system") else "bot"
    text = msg.text
    if sender == "citizen":
        text = titles.get(text, text)
    buttons = [
        {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
        for b in payload.get("buttons") or []
        if isinstance(b, dict)
    ]
    frame: dict[str, Any] = {
        "type": "message",
        "from": sender,
        "text": text,
        "buttons": buttons,
        "link": safe_link(payload.get("link")),
        "id": msg.id,
        "ts": msg.created_at.isoformat(),
    }
    if sender == "citizen" and msg.channel_message_id:
        frame["client_id"] = msg.channel_message_id
    return frame


def learn_titles(titles: dict[str, str], msg: Message) -> None:
    """Remember the titles of the buttons a message offered (payload → title)."""
    if msg.sender == "citizen":
        return
    for b in (msg.payload or {}).get("buttons") or []:
        if isinstance(b, dict) and b.get("payload") and b.get("title"):
            titles[str(b["payload"])] = str(b["title"])


@dataclass(eq=False)
class Client:
    """One open socket: a browser tab."""

    ws: web.WebSocketResponse
    last_id: int = 0
    ready: bool = False  # the session frame (history) has been sent

    async def send(self, frame: dict[str, Any]) -> None:
        """Send a frame; a socket that is closing is simply skipped."""
        if self.ws.closed:
            return
        try:
            await self.ws.send_json(frame, dumps=_dumps)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("web socket gone while sending: %s", exc)


@dataclass(eq=False)
class Session:
    """The open sockets of one session token in this process."""

    session_hash: str
    clients: set[Client] = field(default_factory=set)
    conversation_id: int | None = None
    titles: dict[str, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def ready_clients(self) -> list[Client]:
        """Sockets that have their history and take live frames."""
        return [c for c in self.clients if c.ready and not c.ws.closed]


class SocketRegistry:
    """Live sockets of this process by session hash."""

    def __init__(self) -> None:
        self.process_id = uuid.uuid4().hex
        self._sessions: dict[str, Session] = {}

    def join(self, session_hash: str, client: Client) -> Session:
        """Attach a socket to its session (created on first use)."""
        session = self._sessions.get(session_hash)
        if session is None:
            session = self._sessions[session_hash] = Session(session_hash)
        session.clients.add(client)
        return session

    def leave(self, session: Session, client: Client) -> None:
        """Detach a socket; forget the session when its last socket closes."""
        session.clients.discard(client)
        if not session.clients and self._sessions.get(session.session_hash) is session:
            del self._sessions[session.session_hash]

    def get(self, session_hash: str) -> Session | None:
        """The session if this process holds a socket of it."""
        return self._sessions.get(session_hash)

    def all_clients(self) -> list[Client]:
        """Every open socket (for shutdown)."""
        return [c for s in self._sessions.values() for c in s.clients]


SOCKETS = web.AppKey("web_sockets", SocketRegistry)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def _conversation_id(app: web.Application, session_hash: str) -> int | None:
    stmt = (
        select(Conversation.id)
        .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
        .where(ChannelIdentity.channel == CHANNEL, ChannelIdentity.external_id == session_hash)
    )
    async with app[DB].session() as s:
        return (await s.execute(stmt)).scalar_one_or_none()


async def sync_session(app: web.Application, session: Session) -> None:
    """Send every ready socket of `session` the stored messages it has not seen yet."""
    async with session.lock:
        if session.conversation_id is None:
            session.conversation_id = await _conversation_id(app, session.session_hash)
            if session.conversation_id is None:
                return
        clients = session.ready_clients()
        if not clients:
            return
        since = min(c.last_id for c in clients)
        stmt = (
            select(Message)
            .where(
                Message.conversation_id == session.conversation_id,
                Message.internal.is_(False),
                Message.id > since,
            )
            .order_by(Message.id)
            .limit(SYNC_BATCH)
        )
        async with app[DB].session() as s:
            rows = list((await s.execute(stmt)).scalars())
        frames = []
        for m in rows:
            learn_titles(session.titles, m)
            frames.append((m.id, message_frame(m, session.titles)))
        for client in clients:
            for msg_id, frame in frames:
                if msg_id > client.last_id:
                    await client.send(frame)
                    client.last_id = msg_id


async def deliver(app: web.Application, session_hash: str) -> None:
    """Bring this process's sockets of a session up to date and poke the other processes."""
    registry = app[SOCKETS]
    session = registry.get(session_hash)
    if session is not None:
        await sync_session(app, session)
    await app[BUS].publish(BUS_TOPIC, {"session": session_hash, "origin": registry.process_id})


class WebChannel:
    """ChannelAdapter for the widget. Replies must already be stored (Router.push does that):
    they are delivered from the store to every open tab, or shown in history on the next visit."""

    name = CHANNEL

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def send(self, external_id: str, replies: Sequence[Reply]) -> None:
        """Push the session's new stored messages to its open sockets, in any process."""
        await deliver(self._app, external_id)


def origin_allowed(request: web.Request) -> bool:
    """Same origin, loopback origins and those listed in WEB_ALLOWED_ORIGINS may connect."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: Origin only protects browsers from cross-site sockets
    origin = origin.strip().rstrip("/").lower()
    settings = request.app[SETTINGS]
    listed = {
        o.strip().rstrip("/").lower() for o in settings.web_allowed_origins.split(",") if o.strip()
    }
    if origin in listed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (sandboxed frames, files) and anything odd
    if parts.netloc == request.host.lower():
        return True
    public = urlsplit(settings.public_base_url)
    if origin == f"{public.scheme}://{public.netloc}".lower():
        return True
    if parts.hostname == "localhost":
        return True
    try:
        return ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class Connection:
    """One widget socket: parses frames, keeps its session, answers errors in Chinese."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.app = request.app
        self.client_subject = limit_subject(request)
        self.client = Client(ws)
        self.session: Session | None = None

    async def error(self, text: str, client_id: str | None = None) -> None:
        """Tell the widget what went wrong; the socket stays open."""
        frame: dict[str, Any] = {"type": "error", "text": text}
        if client_id:
            frame["client_id"] = client_id
        await self.client.send(frame)

    async def on_text(self, data: str) -> None:
        """Dispatch one text frame."""
        try:
            frame = json.loads(data)
        except ValueError:
            await self.error(E_FORMAT)
            return
        if not isinstance(frame, dict):
            await self.error(E_FORMAT)
            return
        kind = frame.get("type")
        if kind == "hello":
            await self.on_hello(frame)
        elif kind in ("message", "button"):
            await self.on_turn(kind, frame)
        else:
            await self.error(E_TYPE)

    async def on_hello(self, frame: dict[str, Any]) -> None:
        """Resume a known session or mint a new one; answer with the recent history."""
        if self.session is not None:
            await self.error(E_TWICE)
            return
        bus = self.app[BUS]
        token = frame.get("session")
        conversation_id: int | None = None
        known = False
        if isinstance(token, str) and 16 <= len(token) <= 128:
            session_hash = hash_token(token)
            conversation_id = await _conversation_id(self.app, session_hash)
            known = conversation_id is not None or (
                await bus.get(f"web:minted:{session_hash}") is not None
            )
        if not known:
            token = secrets.token_urlsafe(32)
            session_hash = hash_token(token)
            await bus.set(f"web:minted:{session_hash}", "1", ttl=MINTED_TTL)
            if await self._welcome(session_hash):
                conversation_id = await _conversation_id(self.app, session_hash)
        session = self.app[SOCKETS].join(session_hash, self.client)
        self.session = session
        async with session.lock:
            if session.conversation_id is None:
                session.conversation_id = conversation_id
            history: list[dict[str, Any]] = []
            if session.conversation_id is not None:
                async with self.app[DB].session() as s:
                    rows = await conversations.history(s, session.conversation_id, HISTORY_LIMIT)
                for m in rows:
                    learn_titles(session.titles, m)
                    history.append(message_frame(m, session.titles))
                    self.client.last_id = max(self.client.last_id, m.id)
            await self.client.send({"type": "session", "session": token, "history": history})
            self.client.ready = True

    async def _welcome(self, session_hash: str) -> bool:
        """Store the assistant's welcome in a new session; False if there is none.

        Limited per client address, so a script opening sockets cannot make the gateway create
        conversations and call Rasa without end; beyond the limit the widget shows its own
        static welcome.
        """
        welcome = await limits.attempt(self.app[BUS], [(WELCOME_LIMIT, self.client_subject)])
        if not welcome.allowed:
            return False
        try:
            return bool(await self.app[ROUTER].welcome(CHANNEL, session_hash))
        except Exception:
            log.exception("web welcome failed")
            return False

    async def on_turn(self, kind: str, frame: dict[str, Any]) -> None:
        """A typed message or a chosen button: validate, route, deliver."""
        client_id = frame.get("client_id")
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
            client_id = None
        if self.session is None:
            await self.error(E_NO_SESSION, client_id)
            return
        if kind == "message":
            text = frame.get("text")
            if not isinstance(text, str):
                await self.error(E_FORMAT, client_id)
                return
        else:
            text, title = frame.get("payload"), frame.get("title")
            if not isinstance(text, str) or not isinstance(title, str):
                await self.error(E_FORMAT, client_id)
                return
            if len(title) > MAX_TITLE_CHARS:
                await self.error(E_TOO_LONG, client_id)
                return
        if len(text) > MAX_TEXT_CHARS:
            await self.error(E_TOO_LONG, client_id)
            return
        if not clean_text(text):
            await self.error(E_EMPTY, client_id)
            return
        if kind == "button" and title.strip():
            self.session.titles[text] = title.strip()
        session_hash = self.session.session_hash
        if await self.app[BUS].incr(f"web:rate:{session_hash}", ttl=60) > RATE_LIMIT:
            await self.error(E_RATE, client_id)
            return
        await self._typing(True)
        try:
            await self.app[ROUTER].handle(
                InboundMessage(
                    channel=CHANNEL,
                    external_id=session_hash,
                    text=text,
                    message_id=client_id,
                    metadata={CLIENT_SUBJECT: self.client_subject},
                )
            )
        except Exception:
            # The message was most likely stored before the failure: no client_id, so the
            # widget keeps its bubble and confirms it when the stored copy arrives.
            log.exception("web turn failed")
            await self.error(E_BUSY)
        try:
            await deliver(self.app, session_hash)
        finally:
            await self._typing(False)

    async def _typing(self, on: bool) -> None:
        if self.session is None:
            return
        for client in self.session.ready_clients():
            await client.send({"type": "typing", "on": on})

    def close(self) -> None:
        """Detach from the registry."""
        if self.session is not None:
            self.app[SOCKETS].leave(self.session, self.client)


async def chat_socket(request: web.Request) -> web.StreamResponse:
    """`GET /ws/chat`: the widget's WebSocket."""
    if not origin_allowed(request):
        return web.Response(status=403, text="origin not allowed")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    conn = Connection(request, ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await conn.on_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await conn.error(E_TYPE)
            elif msg.type == WSMsgType.ERROR:
                log.info("web socket error: %s", ws.exception())
                break
    finally:
        conn.close()
    return ws


def _static(
    name: str,
    content_type: str,
    *,
    embeddable: bool = False,
    cors: bool = False,
    csp: str | None = None,
):
    path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Cache-Control": "public, max-age=300", "Content-Type": content_type}
        if embeddable:  # loaded by pages of other sites
            headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        if cors:
            headers["Access-Control-Allow-Origin"] = "*"
        if csp:
            headers["Content-Security-Policy"] = csp
            headers["Cache-Control"] = "no-cache"
        return web.FileResponse(path, headers=headers)

    return handler


async def _listen(app: web.Application) -> None:
    """Deliver to this process's sockets what other processes announce on the bus."""
    registry = app[SOCKETS]
    tasks: set[asyncio.Task[None]] = set()
    while True:
        try:
            async for event in app[BUS].subscribe(BUS_TOPIC):
                if event.get("origin") == registry.process_id:
                    continue
                session = registry.get(str(event.get("session")))
                if session is not None:
                    task = asyncio.create_task(sync_session(app, session))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("web bus subscription failed; retrying")
            await asyncio.sleep(1.0)


async def _bus_listener(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_listen(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


CLOSE_SECONDS = 2.0  # per socket at shutdown: a client that never answers the close frame


async def _close_sockets(app: web.Application) -> None:
    for client in app[SOCKETS].all_clients():
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_SECONDS):
                await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def setup(app: web.Application) -> None:
    """Register the widget socket, its static files, the demo page and the web adapter."""
    app[SOCKETS] = SocketRegistry()
    app[CHANNELS].register(WebChannel(app))
    app.router.add_get("/ws/chat", chat_socket)
    app.router.add_get(
        "/static/widget.js",
        _static("widget.js", "application/javascript; charset=utf-8", embeddable=True, cors=True),
    )
    app.router.add_get(
        "/static/widget.css", _static("widget.css", "text/css; charset=utf-8", embeddable=True)
    )
    app.router.add_get("/static/demo.css", _static("demo.css", "text/css; charset=utf-8"))
    app.router.add_get("/", _static("index.html", "text/html; charset=utf-8", csp=DEMO_CSP))
    app.cleanup_ctx.append(_bus_listener)
    app.on_shutdown.append(_close_sockets)
