"""The console's sign-in routes under /console/api/. The rest of the API lives in one module
per topic, each with its own `routes()`: handoffs, conversations (and message reveal), orders
(work orders and filing for a citizen), agents (users and admin controls), board.

Every route checks the role (`auth.requires`; writes also need CSRF and Origin) and, when it
takes a conversation, hand-off, message or work order, the ownership rule (`access.owns`).
Handlers raise; `errors.console_errors` answers `{"error": …}` with the status."""

from __future__ import annotations

from aiohttp import web

from bot.console import auth


def routes() -> list[web.RouteDef]:
    """Sign-in, sign-out and who am I."""
    p = "/console/api"
    return [
        web.post(f"{p}/login", auth.login),
        web.post(f"{p}/logout", auth.logout),
        web.get(f"{p}/me", auth.me),
    ]
