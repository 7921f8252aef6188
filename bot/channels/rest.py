"""Rasa-compatible REST channel for integrations: `POST /webhooks/rest/webhook`.

Same request and answer shape as Rasa's own REST channel. When REST_API_KEY is set, callers
must send it in `X-API-Key`; the gateway's own loopback default (no key) stays open only on
loopback addresses so `make run` works out of the box.
"""

from __future__ import annotations

import hmac
import json
from ipaddress import ip_address

from aiohttp import web

from bot.keys import ROUTER, SETTINGS
from bot.messages import InboundMessage

CHANNEL = "rest"
MAX_SENDER = 128


def _allowed(request: web.Request) -> bool:
    key = request.app[SETTINGS].rest_api_key.get_secret_value()
    if key:
        given = request.headers.get("X-API-Key", "")
        return hmac.compare_digest(given.encode(), key.encode())
    peer = request.remote or ""
    try:
        return ip_address(peer).is_loopback
    except ValueError:
        return False


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
    """Register the REST channel routes."""
    app.router.add_get("/webhooks/rest/", status)
    app.router.add_post("/webhooks/rest/webhook", webhook)
