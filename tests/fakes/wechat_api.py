"""A local stand-in for api.weixin.qq.com: stable token, customer-service and template messages.

It speaks WeChat's JSON protocol: `errcode`/`errmsg` answers, 40001 for an unknown access token,
41001 for a missing one. Every call is recorded; a test can queue errcodes to return next (e.g.
-1 "system error", WeChat's "busy, try again later"), queue HTTP 5xx answers of the front proxy
(`http_errors`), or invalidate the current token to see the client renew it.

Like WeChat, it refuses customer-service messages to a follower whose 48-hour window is closed
(`close_window(openid)` → 45015) while template messages still reach them; templates must be
known (`add_template`, else 40037) and every `data` field must be `{"value": <string>}` (47001);
an unsubscribed follower gets 43004 for templates.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40037: "invalid template_id",
    43004: "require subscribe",
    47001: "data format error",
    41001: "access_token missing",
    42001: "access_token expired",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
}


class FakeWeChatAPI(LocalServer):
    """Start with `await fake.start()`; `fake.url` is its base URL (WECHAT_API_BASE)."""

    def __init__(self, app_id: str, app_secret: str) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.calls: list[dict[str, Any]] = []  # {"path", "query", "body"} for every request
        self.errors: list[int] = []  # errcodes to answer on the next message sends, in order
        self.http_errors: list[int] = []  # HTTP statuses (5xx) to answer the next sends with
        self.closed_windows: set[str] = set()  # openids outside the 48 h customer-service window
        self.unsubscribed: set[str] = set()  # openids that unfollowed the account
        self.templates: set[str] = set()  # template ids added in the 公众号 console
        self._serial = itertools.count(1)
        self._msgid = itertools.count(1000)
        self.token = ""
        app = web.Application()
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        super().__init__(app)

    @property
    def url(self) -> str:
        """Base URL to configure the client under test with."""
        return self.url_for()

    def invalidate_token(self) -> None:
        """Make the current access token unknown (as if another caller forced a refresh)."""
        self.token = "revoked-" + self.token

    def close_window(self, openid: str) -> None:
        """The follower has not written for 48 hours: customer-service sends get 45015."""
        self.closed_windows.add(openid)

    def add_template(self, template_id: str) -> None:
        """Make `template_id` usable, as picking it from the template library does."""
        self.templates.add(template_id)

    def calls_to(self, path: str) -> list[dict[str, Any]]:
        """Recorded calls of one endpoint, oldest first."""
        return [c for c in self.calls if c["path"] == path]

    @property
    def sent_texts(self) -> list[tuple[str, str]]:
        """(openid, content) of every accepted customer-service text message."""
        return [
            (c["body"]["touser"], c["body"]["text"]["content"])
            for c in self.calls_to("/cgi-bin/message/custom/send")
            if c["accepted"]
        ]

    @property
    def sent_templates(self) -> list[dict[str, Any]]:
        """Bodies of every accepted template message."""
        return [c["body"] for c in self.calls_to("/cgi-bin/message/template/send") if c["accepted"]]

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = json.loads(await request.read() or b"{}")
        call = {"path": request.path, "query": dict(request.query), "body": body, "accepted": False}
        self.calls.append(call)
        return call

    @staticmethod
    def _error(code: int) -> web.Response:
        return web.json_response({"errcode": code, "errmsg": ERRMSG.get(code, "error")})

    async def _stable_token(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        body = call["body"]
        if body.get("grant_type") != "client_credential":
            return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
        if body.get("appid") != self.app_id or body.get("secret") != self.app_secret:
            return web.json_response({"errcode": 40013, "errmsg": "invalid appid"})
        if not self.token or self.token.startswith("revoked-") or body.get("force_refresh"):
            self.token = f"ACCESS_TOKEN_{next(self._serial)}"
        call["accepted"] = True
        return web.json_response({"access_token": self.token, "expires_in": 7200})

    def _check(self, call: dict[str, Any]) -> web.Response | None:
        if self.http_errors:
            status = self.http_errors.pop(0)
            page = f"<html><body><h1>{status}</h1>nginx</body></html>"
            return web.Response(status=status, text=page, content_type="text/html")
        token = call["query"].get("access_token")
        if not token:
            return self._error(41001)
        if token != self.token:
            return self._error(40001)
        if self.errors:
            return self._error(self.errors.pop(0))
        return None

    async def _custom_send(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        refused = self._check(call)
        if refused is not None:
            return refused
        body = call["body"]
        if body.get("msgtype") != "text" or not body.get("text", {}).get("content"):
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        touser = body.get("touser")
        if not touser:
            return self._error(40003)
        if touser in self.closed_windows or touser in self.unsubscribed:
            return self._error(45015)
        call["accepted"] = True
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _template_send(self, request: web.Request) -> web.Response:
        call = await self._record(request)
        refused = self._check(call)
        if refused is not None:
            return refused
        body = call["body"]
        touser = body.get("touser")
        if not touser or not isinstance(touser, str):
            return self._error(40003)
        if body.get("template_id") not in self.templates:
            return self._error(40037)
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()
        ):
            return self._error(47001)
        if "url" in body and not isinstance(body["url"], str):
            return self._error(47001)
        if touser in self.unsubscribed:
            return self._error(43004)
        call["accepted"] = True
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._msgid)})
