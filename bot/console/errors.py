"""One place where console errors become answers: handlers raise, this middleware answers
`{"error": "<short Chinese message>"}` with the status of the error's branch.

    store.errors.NotFound  → 404      store.errors.Invalid → 400
    store.errors.Conflict  → 409      store.errors.Busy    → 503
    Refused(status, msg)   → status   (a console decision: 403 not yours, 400 bad request …)

Raising inside `async with db.session()` also rolls the transaction back, so a refused change
writes nothing. Only paths under /console/ are mapped; other errors pass through unchanged.
"""

from __future__ import annotations

from aiohttp import web

from store.errors import (
    Busy,
    Conflict,
    HandoffTaken,
    Invalid,
    InvalidTransition,
    NotFound,
    StoreError,
)

STATUS = ((NotFound, 404), (Conflict, 409), (Invalid, 400), (Busy, 503))


class Refused(Exception):
    """Stop a console request with `status` and a message for the user (nothing is written)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> web.Response:
    """A JSON error with a short Chinese message for the console."""
    return web.json_response({"error": message}, status=status)


def message_of(exc: StoreError) -> str:
    """What the console shows for a store error."""
    if isinstance(exc, HandoffTaken):
        return f"该会话已被处理（{exc.state}）"
    if isinstance(exc, InvalidTransition) and exc.subject == "hand-off":
        return f"当前状态 {exc.from_state} 不能执行此操作"
    if isinstance(exc, Busy):
        return "系统繁忙，请重试"
    if isinstance(exc, Conflict):
        return "当前状态不能执行此操作，请刷新后重试"
    return str(exc) or "请求错误"


@web.middleware
async def console_errors(request: web.Request, handler) -> web.StreamResponse:
    """Map Refused and store errors raised by console handlers to JSON answers."""
    if not request.path.startswith("/console/"):
        return await handler(request)
    try:
        return await handler(request)
    except Refused as exc:
        return error(exc.status, exc.message)
    except StoreError as exc:
        status = next((code for branch, code in STATUS if isinstance(exc, branch)), 500)
        return error(status, message_of(exc))
