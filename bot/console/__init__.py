"""Agent console: sign-in, hand-off queue, live conversation, replies, notes, work orders."""

from __future__ import annotations

from aiohttp import web

from bot.console import (
    agents,
    api,
    board,
    conversations,
    errors,
    handoffs,
    identities,
    live,
    orders,
    pages,
    ws,
)


def setup(app: web.Application) -> None:
    """Register the console's pages, API, socket, error answers and background watcher."""
    app.middlewares.append(errors.console_errors)
    for module in (api, handoffs, conversations, orders, agents, board, identities):
        app.router.add_routes(module.routes())
    app.router.add_get("/console/ws", ws.console_ws)
    app.router.add_routes(pages.routes())
    app.cleanup_ctx.append(live.live_ctx)
