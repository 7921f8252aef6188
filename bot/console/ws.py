"""`GET /console/ws`: the console's live socket (session cookie, Origin checked).

Server → client: `{"type":"message",...}`, `{"type":"handoff",...}`, `{"type":"pong"}`.
Client → server: `{"type":"heartbeat"}` every ~20 s keeps the agent online (presence).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from aiohttp import WSMsgType, web

from bot.console import auth
from bot.console.live import HUB
from bot.keys import DB
from store import agents

HEARTBEAT_MIN_INTERVAL = 5.0


async def console_ws(request: web.Request) -> web.StreamResponse:
    """Upgrade to a WebSocket for a signed-in console user."""
    if not auth.origin_ok(request):
        return auth.error(403, "来源不被允许")
    session = await auth.current(request)
    if session is None:
        return auth.error(401, "请先登录")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    hub = request.app[HUB]
    queue = hub.add()
    await _touch(request, session.agent_id)
    sender = asyncio.create_task(_send_loop(ws, queue, session.key))
    last_touch = time.monotonic()
    try:
        await ws.send_json({"type": "hello", "agent": auth.agent_json(session)})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError:
                continue
            if not isinstance(data, dict) or data.get("type") != "heartbeat":
                continue
            if not await auth.still_valid(request.app, session):
                await ws.close(code=4401, message=b"logged out")
                break
            if time.monotonic() - last_touch >= HEARTBEAT_MIN_INTERVAL:
                await _touch(request, session.agent_id)
                last_touch = time.monotonic()
            await ws.send_json({"type": "pong"})
    finally:
        hub.remove(queue)
        if not sender.done() and not getattr(ws, "_console_logout", False):
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(sender, 2)  # let a logout close finish its handshake
    return ws


async def _touch(request: web.Request, agent_id: int) -> None:
    async with request.app[DB].session() as s:
        await agents.touch(s, agent_id)


async def _send_loop(ws: web.WebSocketResponse, queue: asyncio.Queue, key: str) -> None:
    while not ws.closed:
        event = await queue.get()
        if event.get("type") == auth.LOGOUT_EVENT:
            if event.get("key") == key:
                ws._console_logout = True  # type: ignore[attr-defined]
                await ws.close(code=4401, message=b"logged out")
                return
            continue
        try:
            await ws.send_json(event)
        except (ConnectionResetError, RuntimeError):
            return
