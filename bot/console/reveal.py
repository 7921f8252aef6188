"""The one reveal path: personal data shown unmasked, to someone allowed, and audited.

    reveal_message = reveals("message", load_message)

`load(request, session, user)` parses the route's id, loads the row, asks the ownership rule
(`bot.console.access.owns`) and returns `(key, data)`, or raises (NotFound / Refused) when
there is nothing this user may see. Then one audit row `reveal <target>:<key>` is written and
`data` is the answer. A refusal is never audited as a reveal and shows nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.auth import ConsoleUser, Handler, audit, requires, user_of
from bot.keys import DB

Loader = Callable[[web.Request, AsyncSession, ConsoleUser], Awaitable[tuple[str, dict[str, Any]]]]


def reveals(target: str, load: Loader) -> Handler:
    """A `POST …/reveal` handler for `target` (message, context, work_order) built on `load`."""

    @requires("agent", write=True)
    async def handler(request: web.Request) -> web.Response:
        user = user_of(request)
        async with request.app[DB].session() as session:
            key, data = await load(request, session, user)
        await audit(request, user.agent_id, "reveal", f"{target}:{key}")
        return web.json_response(data)

    handler.__name__ = f"reveal_{target}"
    handler.__doc__ = load.__doc__
    return handler
