"""The console's HTML pages and static files (no build step)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.console import auth

STATIC = Path(__file__).resolve().parent.parent / "static" / "console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _page(name: str, *, signed_in: bool = False):
    async def handler(request: web.Request) -> web.StreamResponse:
        if signed_in and await auth.current(request) is None:
            raise web.HTTPFound("/console/login")
        response = web.FileResponse(STATIC / name)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Cache-Control"] = "no-store"
        return response

    return handler


async def redirect(request: web.Request) -> web.StreamResponse:
    """`/console` → `/console/`."""
    raise web.HTTPFound("/console/")


def routes() -> list[web.AbstractRouteDef]:
    """Pages and the static directory."""
    return [
        web.get("/console", redirect),
        web.get("/console/", _page("index.html", signed_in=True)),
        web.get("/console/login", _page("login.html")),
        web.static("/console/static", STATIC),
    ]
