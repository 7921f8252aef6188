"""Agent console: sign-in, hand-off queue, live conversation, replies, notes, work orders."""

from __future__ import annotations

from aiohttp import web

from bot.console import api, board, identities, live, orders, pages, ws


def setup(app: web.Application) -> None:
    """Register the console's pages, API, socket and background watcher."""
    app.router.add_routes(api.routes())
    app.router.add_routes(orders.routes())
    app.router.add_routes(board.routes())
    app.router.add_routes(identities.routes())
    app.router.add_get("/console/ws", ws.console_ws)
    app.router.add_routes(pages.routes())
    app.cleanup_ctx.append(live.live_ctx)
