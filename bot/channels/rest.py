"""Rasa-compatible REST channel for integrations: `POST /webhooks/rest/webhook`.

Same request and answer shape as Rasa's own REST channel. When REST_API_KEY is set, callers
must send it in `X-API-Key`. Without a key the channel is open only in the zero-setup case: the
gateway is bound to loopback (HOST 127.0.0.1, ::1 or localhost), no TRUSTED_PROXIES are
configured (a proxy on the same machine would make every public caller look local) and the
caller's own address is loopback. In every other case the gateway still starts, logs at start-up
that the channel is closed and why, and answers 401.
"""

from __future__ import annotations

import hmac
import json
import logging
from ipaddress import ip_address

from aiohttp import web

from bot.keys import ROUTER, SETTINGS
from bot.messages import InboundMessage
from bot.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "rest"
MAX_SENDER = 128
LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def keyless_open(settings: Settings) -> bool:
    """True if callers without a key may use the channel (loopback-only gateway, no proxy)."""
    return _is_loopback(settings.host) and not settings.trusted_proxy_networks


def _allowed(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    key = settings.rest_api_key.get_secret_value()
    if key:
        given = request.headers.get("X-API-Key", "")
        return hmac.compare_digest(given.encode(), key.encode())
    return keyless_open(settings) and _is_loopback(request.remote or "")


async def webhook(request: web.Request) -> web.Response:
    """One turn: `{"sender", "message", "message_id"?}` → `[{"recipient_id", "text", ...}]`."""
    if not _allowed(request):
        return web.json_response({"error": "invalid or missing API key"}, status=401)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    sender, text = body.get("sender"), body.get("message")
    if not isinstance(sender, str) or not sender or len(sender) > MAX_SENDER:
        return web.json_response({"error": "sender must be a non-empty string"}, status=400)
    if not isinstance(text, str):
        return web.json_response({"error": "message must be a string"}, status=400)
    message_id = body.get("message_id")
    inbound = InboundMessage(
        channel=CHANNEL,
        external_id=sender,
        text=text,
        message_id=str(message_id) if message_id is not None else None,
    )
    replies = await request.app[ROUTER].handle(inbound)
    return web.json_response([r.to_rest(sender) for r in replies])


async def status(request: web.Request) -> web.Response:
    """Rasa's `GET /webhooks/rest/` health answer."""
    return web.json_response({"status": "ok"})


def setup(app: web.Application) -> None:
    """Register the REST channel routes; say at start-up when the channel is closed."""
    settings = app[SETTINGS]
    if not settings.rest_api_key.get_secret_value() and not keyless_open(settings):
        reason = (
            f"TRUSTED_PROXIES is set ({settings.trusted_proxies})"
            if settings.trusted_proxy_networks
            else f"HOST={settings.host} is not a loopback address"
        )
        log.warning(
            "REST channel closed: REST_API_KEY is empty and %s; every call to "
            "/webhooks/rest/webhook is answered 401 until REST_API_KEY is set",
            reason,
        )
    app.router.add_get("/webhooks/rest/", status)
    app.router.add_post("/webhooks/rest/webhook", webhook)
