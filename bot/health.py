"""`/healthz` (the process is up) and `/readyz` (everything it depends on answers)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from bot.keys import BUS, DB, HTTP, RASA, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: database, Redis (if configured), Rasa and the action server all answer."""
    app = request.app
    settings = app[SETTINGS]
    checks: dict[str, asyncio.Future[bool] | asyncio.Task[bool]] = {
        "database": asyncio.ensure_future(app[DB].ping()),
        "rasa": asyncio.ensure_future(app[RASA].ping()),
        "action_server": asyncio.ensure_future(_action_server_ok(request)),
    }
    if settings.redis_url:
        checks["redis"] = asyncio.ensure_future(app[BUS].ping())
    results = {name: await fut for name, fut in checks.items()}
    ok = all(results.values())
    return web.json_response(
        {"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503
    )


async def _action_server_ok(request: web.Request) -> bool:
    url = request.app[SETTINGS].action_server_url.rstrip("/") + "/health"
    try:
        async with asyncio.timeout(2):
            async with request.app[HTTP].get(url) as resp:
                return resp.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


def setup(app: web.Application) -> None:
    """Register the health routes."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
