"""A local stand-in for the Telegram Bot API (`POST /bot<token>/<method>`).

It speaks the real protocol closely enough for python-telegram-bot: parameters arrive
form-encoded (PTB) or as JSON, answers are `{"ok": true, "result": ...}` or Bot-API-shaped
errors. It enforces the limits that matter to us (text 1..4096 characters, callback_data at
most 64 bytes) and can answer 429 with `retry_after`, 502 "Bad Gateway" (Telegram's servers
briefly down) or 403 "bot was blocked by the user", or hang until released (`stall`).
Every call is recorded in `calls` as `(method, params)`.

The module also builds the update JSON Telegram would POST to a webhook.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

BOT_ID = 777000111
TOKEN = f"{BOT_ID}:AAFakeTokenForTestsOnly_abcdefghijk"
# Parameters the Bot API takes as JSON-serialised objects inside form fields.
JSON_FIELDS = {"reply_markup", "allowed_updates", "entities", "link_preview_options"}


class FakeTelegramAPI(LocalServer):
    """Start with `await fake.start()`; point PTB's `base_url` at `fake.base_url`."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.blocked: set[str] = set()  # chat ids that blocked the bot (403 on send)
        self.flood = 0  # answer this many next sendMessage calls with 429
        self.down = 0  # answer this many next sendMessage calls with 502 Bad Gateway
        self.retry_after = 1
        self.stall: asyncio.Event | None = None  # sendMessage answers only once this is set
        self.webhook: dict[str, Any] = {}
        self._message_ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._dispatch)
        app.router.add_get("/bot{token}/{method}", self._dispatch)
        super().__init__(app)

    @property
    def base_url(self) -> str:
        """What PTB's `base_url` should be (PTB appends the token)."""
        return self.url_for("/bot")

    def called(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of `method`, oldest first."""
        return [params for name, params in self.calls if name == method]

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.json()
            return dict(body) if isinstance(body, dict) else {}
        form = await request.post()
        params: dict[str, Any] = {**request.query, **{k: v for k, v in form.items()}}
        for key in JSON_FIELDS & params.keys():
            params[key] = json.loads(params[key])
        return params

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        handler = getattr(self, "_m_" + method.lower(), None)
        if handler is None:
            return _error(404, "Not Found")
        return await handler(params)

    async def _m_getme(self, params: dict[str, Any]) -> web.Response:
        return _ok(
            {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "12345助手",
                "username": "hotline12345_test_bot",
                "can_join_groups": False,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )

    async def _m_setwebhook(self, params: dict[str, Any]) -> web.Response:
        secret = str(params.get("secret_token", ""))
        if secret and (len(secret) > 256 or not all(c.isalnum() or c in "_-" for c in secret)):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = params
        return _ok(True)

    async def _m_deletewebhook(self, params: dict[str, Any]) -> web.Response:
        self.webhook = {}
        return _ok(True)

    async def _m_sendmessage(self, params: dict[str, Any]) -> web.Response:
        if self.stall is not None:  # a Bot API that hangs (the caller may give up first)
            await self.stall.wait()
        chat_id = str(params.get("chat_id", ""))
        text = str(params.get("text", ""))
        if self.down > 0:
            self.down -= 1
            return _error(502, "Bad Gateway")
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if self.flood > 0:
            self.flood -= 1
            return _error(
                429,
                f"Too Many Requests: retry after {self.retry_after}",
                {"retry_after": self.retry_after},
            )
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        for row in (params.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    return _error(400, "Bad Request: BUTTON_DATA_INVALID")
        return _ok(
            {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": int(chat_id), "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "12345助手"},
                "text": text,
            }
        )

    async def _m_answercallbackquery(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def _user(chat_id: int, first_name: str) -> dict[str, Any]:
    return {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": "zh-hans"}


def _chat(chat_id: int, first_name: str) -> dict[str, Any]:
    return {"id": chat_id, "type": "private", "first_name": first_name}


def _private_message(
    update_id: int, chat_id: int, first_name: str, **content: Any
) -> dict[str, Any]:
    """A webhook body of a private message with the given content fields."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id * 10,
            "date": int(time.time()),
            "from": _user(chat_id, first_name),
            "chat": _chat(chat_id, first_name),
            **content,
        },
    }


def text_update(
    update_id: int, chat_id: int, text: str, first_name: str = "小明"
) -> dict[str, Any]:
    """The webhook body of a private text message."""
    return _private_message(update_id, chat_id, first_name, text=text)


def photo_update(
    update_id: int, chat_id: int, first_name: str = "小明", caption: str | None = None
) -> dict[str, Any]:
    """The webhook body of a private photo (two sizes, smallest first, as Telegram sends)."""
    photo = [
        {"file_id": "AgAD1small", "file_unique_id": "u1s", "width": 90, "height": 90},
        {"file_id": "AgAD1large", "file_unique_id": "u1l", "width": 1280, "height": 960},
    ]
    extra = {"caption": caption} if caption else {}
    return _private_message(update_id, chat_id, first_name, photo=photo, **extra)


def document_update(update_id: int, chat_id: int, first_name: str = "小明") -> dict[str, Any]:
    """The webhook body of a private PDF document."""
    document = {
        "file_id": "BQACdoc1",
        "file_unique_id": "d1",
        "file_name": "营业执照.pdf",
        "mime_type": "application/pdf",
        "file_size": 52_000,
    }
    return _private_message(update_id, chat_id, first_name, document=document)


def voice_update(update_id: int, chat_id: int, first_name: str = "小明") -> dict[str, Any]:
    """The webhook body of a private voice note."""
    voice = {
        "file_id": "AwACvoice1",
        "file_unique_id": "v1",
        "duration": 4,
        "mime_type": "audio/ogg",
    }
    return _private_message(update_id, chat_id, first_name, voice=voice)


def location_update(
    update_id: int, chat_id: int, venue: dict[str, Any] | None = None, first_name: str = "小明"
) -> dict[str, Any]:
    """The webhook body of a shared location, or of a venue (which carries a location too)."""
    location = {"latitude": 30.274085, "longitude": 120.15507}
    extra: dict[str, Any] = {"location": location}
    if venue is not None:
        extra["venue"] = {"location": location, **venue}
    return _private_message(update_id, chat_id, first_name, **extra)


def sticker_update(update_id: int, chat_id: int, first_name: str = "小明") -> dict[str, Any]:
    """The webhook body of a sticker (not something the gateway stores)."""
    sticker = {
        "file_id": "CAACsticker1",
        "file_unique_id": "s1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    return _private_message(update_id, chat_id, first_name, sticker=sticker)


def callback_update(
    update_id: int, chat_id: int, data: str, message_id: int = 1, first_name: str = "小明"
) -> dict[str, Any]:
    """The webhook body of a pressed inline button."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cbq{update_id}",
            "from": _user(chat_id, first_name),
            "chat_instance": "-1234567890",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": _chat(chat_id, first_name),
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "12345助手"},
                "text": "请选择",
            },
        },
    }
