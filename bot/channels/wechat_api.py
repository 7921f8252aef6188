"""Async client of the WeChat server API: stable access token, customer-service and template
messages (research/protocols.md §1.6-1.8).

The access token comes from `/cgi-bin/stable_token` (several gateway processes share it without
invalidating each other), is cached in the bus until shortly before it expires, is fetched under a
bus lock so only one process asks at a time, and is refreshed once when WeChat says it is invalid
or expired (40001, 40014, 42001).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from store.bus import Bus

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
SYSTEM_BUSY = -1  # WeChat's own "system error, try again later"
UNREACHABLE = -2  # ours: transport error, HTTP 5xx or an answer that is not JSON
TRANSIENT_ERRORS = frozenset({SYSTEM_BUSY, UNREACHABLE})
REFRESH_MARGIN = 300.0  # seconds before expiry when a cached token is dropped
MIN_TOKEN_TTL = 60.0


class WeChatAPIError(RuntimeError):
    """WeChat answered with `errcode != 0` or could not be reached (errcode -2)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatAPI:
    """One per gateway process; safe to share between requests."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        bus: Bus,
        base_url: str,
        app_id: str,
        app_secret: str,
    ) -> None:
        self.http = http
        self.bus = bus
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._secret = app_secret
        self._token_key = f"wechat:access_token:{app_id}"

    async def _post(self, path: str, body: dict[str, Any], params: dict[str, str] | None = None):
        try:
            async with self.http.post(
                self.base_url + path,
                params=params,
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            ) as resp:
                if resp.status >= 500:
                    raise WeChatAPIError(UNREACHABLE, f"HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WeChatAPIError(UNREACHABLE, f"unreachable: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise WeChatAPIError(UNREACHABLE, "answer is not a JSON object")
        return data

    async def access_token(self, *, stale: str | None = None) -> str:
        """A valid access token; pass the token WeChat just refused as `stale` to renew it."""
        cached = await self.bus.get(self._token_key)
        if cached and cached != stale:
            return cached
        async with self.bus.lock(self._token_key, ttl=15, wait=15):
            cached = await self.bus.get(self._token_key)
            if cached and cached != stale:
                return cached  # another request or process renewed it meanwhile
            data = await self._post(
                "/cgi-bin/stable_token",
                {
                    "grant_type": "client_credential",
                    "appid": self.app_id,
                    "secret": self._secret,
                    "force_refresh": stale is not None,
                },
            )
            token = data.get("access_token")
            if not token:
                raise WeChatAPIError(int(data.get("errcode", -1)), str(data.get("errmsg", "")))
            ttl = max(float(data.get("expires_in", 7200)) - REFRESH_MARGIN, MIN_TOKEN_TTL)
            await self.bus.set(self._token_key, token, ttl=ttl)
            return token

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to an access-token API; retries once with a renewed token if refused."""
        token = await self.access_token()
        data = await self._post(path, body, {"access_token": token})
        if int(data.get("errcode", 0)) in TOKEN_ERRORS:
            log.info("wechat access token refused (%s); renewing", data.get("errcode"))
            token = await self.access_token(stale=token)
            data = await self._post(path, body, {"access_token": token})
        errcode = int(data.get("errcode", 0))
        if errcode != 0:
            raise WeChatAPIError(errcode, str(data.get("errmsg", "")))
        return data

    async def send_text(self, openid: str, content: str) -> None:
        """Customer-service text message (only inside the 48 h window; 45015 outside it)."""
        await self.call(
            "/cgi-bin/message/custom/send",
            {"touser": openid, "msgtype": "text", "text": {"content": content}},
        )

    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: dict[str, Any],
        url: str | None = None,
    ) -> int | None:
        """Template message (status pushes outside the window); returns WeChat's msgid.

        `data` maps keyword names to plain strings or to `{"value": ...}` objects.
        """
        fields = {k: v if isinstance(v, dict) else {"value": str(v)} for k, v in data.items()}
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": fields}
        if url:
            body["url"] = url
        answer = await self.call("/cgi-bin/message/template/send", body)
        msgid = answer.get("msgid")
        return int(msgid) if msgid is not None else None
