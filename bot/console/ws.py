"""`GET /console/ws`: the console's live socket (session cookie, Origin checked).

Server → client: `{"type":"message",...}`, `{"type":"handoff",...}`, `{"type":"pong"}`.
Client → server: `{"type":"heartbeat"}` every ~20 s keeps the agent online (presence).

The socket closes with code 4401 when its session ends: at once on logout, deactivation or a
password reset (a bus event), and otherwise at the next re-check, every
`CONSOLE_SESSION_CHECK_SECONDS` (session expired or deleted, agent deactivated), so a socket
never outlives its session even if the browser stops sending heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import WSMsgType, web

from bot.console import auth
from bot.console.live import HUB
from bot.keys import DB, SETTINGS
from store import agents

HEARTBEAT_MIN_INTERVAL = 5.0


async def console_ws(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket for a signed-in console user."""
    if not auth.origin_ok(request):
        return auth.error(403, "来源不被允许")
    user = await auth.current(request)
    if user is None:
        return auth.error(401, "请先登录")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    hub = request.app[HUB]
    queue = hub.add()
    await _touch(request, user.agent_id)
    sender = asyncio.create_task(_send_loop(ws, queue, user))
    checker = asyncio.create_task(
        _recheck_loop(request.app, ws, user, request.app[SETTINGS].console_session_check_seconds)
    )
    last_touch = time.monotonic()
    try:
        await ws.send_json({"type": "hello", "agent": auth.agent_json(user)})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError:
                continue
            if not isinstance(data, dict) or data.get("type") != "heartbeat":
                continue
            if not await auth.still_valid(request.app, user):
                await _close_logged_out(ws)
                break
            if time.monotonic() - last_touch >= HEARTBEAT_MIN_INTERVAL:
                await _touch(request, user.agent_id)
                last_touch = time.monotonic()
            await ws.send_json({"type": "pong"})
    finally:
        hub.remove(queue)
        closer = getattr(ws, "_console_closer", None)
        for task in (sender, checker):
            if task is not closer:
                task.cancel()
        # Let a logout close finish its handshake, whichever task started it.
        await asyncio.wait({sender, checker}, timeout=2)
        for task in (sender, checker):
            task.cancel()
    return ws


async def _touch(request: web.Request, agent_id: int) -> None:
    async with request.app[DB].session() as session:
        await agents.touch(session, agent_id)


async def _close_logged_out(ws: web.WebSocketResponse) -> None:
    ws._console_closer = asyncio.current_task()  # type: ignore[attr-defined]
    await ws.close(code=4401, message=b"logged out")


async def _recheck_loop(
    app: web.Application, ws: web.WebSocketResponse, user: auth.ConsoleUser, every: float
) -> None:
    """Close the socket once its session is no longer valid (checked every `every` seconds)."""
    while not ws.closed:
        await asyncio.sleep(every)
        if not await auth.still_valid(app, user):
            await _close_logged_out(ws)
            return


async def _send_loop(
    ws: web.WebSocketResponse, queue: asyncio.Queue, user: auth.ConsoleUser
) -> None:
    while not ws.closed:
        event = await queue.get()
        if event.get("type") == auth.LOGOUT_EVENT:
            if event.get("key") == user.key or event.get("agent_id") == user.agent_id:
                await _close_logged_out(ws)
                return
            continue
        try:
            await ws.send_json(event)
        except (ConnectionResetError, RuntimeError):
            return
