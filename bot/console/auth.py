"""Console sign-in: server-side sessions in the bus, role checks, CSRF and login throttling.

Login attempts are counted before the password is checked: 5 per (username, client address)
and 30 per client address in 15 minutes (client address: bot/client_address.py). Each wrong
password is audited (`login_failed`, bounded by those limits); the wrong password that uses up a
limit also writes `login_locked`, once per window; refused logins write nothing, so a flood of
them is no flood of database writes.

The cookie holds only a random session id. The bus stores the session under an HMAC of that id
(keyed with SESSION_SECRET), so logout deletes it for real and a leaked bus dump yields no
usable cookie. Every write needs the session's CSRF token in the `X-CSRF-Token` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlsplit

from aiohttp import web

from bot.client_address import limit_subject
from bot.console.errors import error
from bot.keys import BUS, DB, SETTINGS
from store import agents, limits
from store.models import Agent, AuditLog

log = logging.getLogger(__name__)

COOKIE = "h12345_console"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = 8 * 3600
# Login throttling (store/limits.py: counted before the password is checked). Per username and
# client address, so guesses from one address never lock the user out elsewhere; per address,
# so one address cannot try many usernames. No limit per username alone: that would be a switch
# anyone could pull to lock an admin out.
LOGIN_PER_USER_AND_ADDRESS = limits.Limit("console:login:user", max_attempts=5, window_seconds=900)
LOGIN_PER_ADDRESS = limits.Limit("console:login:address", max_attempts=30, window_seconds=900)
SESSION = web.AppKey("console_session_key", bytes)
LOGOUT_EVENT = "_logout"
REQUEST_SESSION = web.RequestKey("console_session", object)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ConsoleUser:
    """A signed-in console user: their server-side console session (the DB one is `session`)."""

    key: str
    agent_id: int
    username: str
    display_name: str
    role: str
    csrf: str
    started_at: float = 0.0  # epoch seconds; sessions started before a revocation are dead


ConsoleSession = ConsoleUser  # the old name


def init_secret(app: web.Application) -> None:
    """Read SESSION_SECRET once at start-up (a random one, with a warning, when unset)."""
    configured = app[SETTINGS].session_secret.get_secret_value()
    if not configured:
        log.warning("SESSION_SECRET is empty: console sessions end when this process stops")
    app[SESSION] = (configured or secrets.token_urlsafe(32)).encode()


def _secret(app: web.Application) -> bytes:
    return app[SESSION]


def _bus_key(app: web.Application, sid: str) -> str:
    digest = hmac.new(_secret(app), sid.encode(), hashlib.sha256).hexdigest()
    return f"console:session:{digest}"


def _secure(app: web.Application) -> bool:
    return app[SETTINGS].public_base_url.lower().startswith("https://")


async def audit(request: web.Request, agent_id: int | None, action: str, target: str) -> None:
    """Write one audit row in its own transaction."""
    async with request.app[DB].session() as s:
        s.add(AuditLog(agent_id=agent_id, action=action[:32], target=target[:128]))


async def start_session(request: web.Request, response: web.Response, agent: Agent) -> str:
    """Create a session for `agent`, set the cookie; returns the CSRF token."""
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    key = _bus_key(request.app, sid)
    data = ConsoleUser(
        key, agent.id, agent.username, agent.display_name, agent.role, csrf, time.time()
    )
    await request.app[BUS].set(key, json.dumps(asdict(data)), ttl=SESSION_TTL)
    response.set_cookie(
        COOKIE,
        sid,
        max_age=SESSION_TTL,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=_secure(request.app),
    )
    return csrf


async def current(request: web.Request) -> ConsoleUser | None:
    """The session of this request with the agent's current role, or None."""
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 128:
        return None
    key = _bus_key(request.app, sid)
    raw = await request.app[BUS].get(key)
    if raw is None:
        return None
    data = json.loads(raw)
    data["key"] = key
    return await _fresh(request.app, ConsoleUser(**data))


async def _fresh(app: web.Application, session: ConsoleUser) -> ConsoleUser | None:
    """`session` with the agent's current role and name, or None when it was revoked (password
    reset, deactivation) or the agent is no longer active."""
    revoked_at = await app[BUS].get(_revoked_key(session.agent_id))
    if revoked_at is not None and session.started_at <= float(revoked_at):
        return None
    async with app[DB].session() as s:
        agent = await s.get(Agent, session.agent_id)
        if agent is None or not agent.active:
            return None
        # Roles and names are read fresh, so a demotion takes effect at once.
        return replace(
            session, role=agent.role, display_name=agent.display_name, username=agent.username
        )


def _revoked_key(agent_id: int) -> str:
    return f"console:revoked:{agent_id}"


async def revoke_sessions(app: web.Application, agent_id: int) -> None:
    """End every session of one agent (all devices, all processes) and close their sockets.

    The bus keeps the moment of revocation for as long as a session can live; sessions started
    before it are refused, so there is no list of sessions to keep in step."""
    await app[BUS].set(_revoked_key(agent_id), repr(time.time()), ttl=SESSION_TTL)
    await app[BUS].publish("console.private", {"type": LOGOUT_EVENT, "agent_id": agent_id})


async def end_session(request: web.Request, session: ConsoleUser) -> None:
    """Delete the server-side session (the cookie alone is worthless afterwards)."""
    await request.app[BUS].delete(session.key)
    # Open sockets of this session close at once (topic name as in bot.console.live).
    await request.app[BUS].publish("console.private", {"type": LOGOUT_EVENT, "key": session.key})


async def still_valid(app: web.Application, session: ConsoleUser) -> bool:
    """True while the session exists, was not revoked and its agent is active (used by
    long-lived sockets, which re-check on a timer)."""
    if await app[BUS].get(session.key) is None:
        return False
    return await _fresh(app, session) is not None


def allowed_origins(request: web.Request) -> set[str]:
    """This request's own origin and the configured public origin."""
    public = urlsplit(request.app[SETTINGS].public_base_url)
    return {
        f"{request.scheme}://{request.host}".lower(),
        f"{public.scheme}://{public.netloc}".lower(),
    }


def origin_ok(request: web.Request) -> bool:
    """Browsers send Origin on writes and sockets; when present it must be ours."""
    origin = request.headers.get("Origin")
    return origin is None or origin.lower() in allowed_origins(request)


def requires(role: str = "agent", *, write: bool = False) -> Callable[[Handler], Handler]:
    """Decorator: a signed-in user with at least `role`; writes also need CSRF and Origin."""

    def decorate(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = await current(request)
            if session is None:
                return error(401, "请先登录")
            if not agents.role_at_least(session.role, role):
                return error(403, "没有权限执行此操作")
            if write:
                token = request.headers.get(CSRF_HEADER, "")
                if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
                    return error(403, "CSRF 校验失败，请刷新页面")
                if not origin_ok(request):
                    return error(403, "来源不被允许")
            request[REQUEST_SESSION] = session
            return await handler(request)

        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorate


def user_of(request: web.Request) -> ConsoleUser:
    """The signed-in user a `requires`-wrapped handler runs for."""
    return request[REQUEST_SESSION]  # type: ignore[return-value]


session_of = user_of  # the old name


async def _json_body(request: web.Request) -> dict | None:
    if request.content_type != "application/json":
        return None
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


async def login(request: web.Request) -> web.Response:
    """`POST /console/api/login {"username","password"}` → `{"agent", "csrf"}` + cookie."""
    if not origin_ok(request):
        return error(403, "来源不被允许")
    body = await _json_body(request)
    if body is None:
        return error(400, "请求格式错误")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return error(400, "请输入用户名和密码")
    username = username.strip()[:64]
    bus = request.app[BUS]
    address = limit_subject(request)
    pair = (LOGIN_PER_USER_AND_ADDRESS, f"{username.lower()}|{address}")
    attempt = await limits.attempt(bus, [pair, (LOGIN_PER_ADDRESS, address)])
    if not attempt.allowed:  # nothing written: a flood of refusals costs no database writes
        return error(429, "登录失败次数过多，请15分钟后再试")
    async with request.app[DB].session() as s:
        agent = await agents.verify(s, username, password[:1024])
    if agent is None:
        await audit(request, None, "login_failed", f"username:{username}")
        # The failure that used up a limit's last try locks it: audited once per window.
        for limit in attempt.used_up:
            target = f"username:{username}" if limit is pair[0] else f"address:{address}"
            await audit(request, None, "login_locked", target)
        return error(401, "用户名或密码错误")
    await attempt.succeeded()
    # Only this user, knowing the password, can clear their own count at this address.
    await limits.reset(bus, *pair)
    response = web.json_response({})
    csrf = await start_session(request, response, agent)
    await audit(request, agent.id, "login", f"agent:{agent.username}")
    response.text = json.dumps({"agent": agent_json(agent), "csrf": csrf}, ensure_ascii=False)
    return response


def agent_json(agent: Agent | ConsoleUser) -> dict:
    """What the console knows about a user."""
    agent_id = agent.agent_id if isinstance(agent, ConsoleUser) else agent.id
    return {
        "id": agent_id,
        "username": agent.username,
        "display_name": agent.display_name,
        "role": agent.role,
    }


@requires("agent", write=True)
async def logout(request: web.Request) -> web.Response:
    """`POST /console/api/logout`: the session is deleted server-side."""
    session = session_of(request)
    await end_session(request, session)
    await audit(request, session.agent_id, "logout", f"agent:{session.username}")
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/console")
    return response


@requires("agent")
async def me(request: web.Request) -> web.Response:
    """`GET /console/api/me` → the signed-in user and the CSRF token for writes."""
    session = session_of(request)
    return web.json_response({"agent": agent_json(session), "csrf": session.csrf})
