"""`POST /api/v1/classify {"text": ...}` → the proposed category for a citizen's description.

Public and CPU-bound, so limited per client address (bot/client_address.py): 30 calls a minute,
counted before the classifier runs; beyond that 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from bot.client_address import limit_subject
from bot.keys import BUS
from store import limits

MAX_CHARS = 4000
CLASSIFY_LIMIT = limits.Limit("classify:address", max_attempts=30, window_seconds=60)
TOO_MANY = "请求过于频繁，请稍后再试。"


async def classify(request: web.Request) -> web.Response:
    """`POST /api/v1/classify`: propose a top-level category; the caller asks to confirm."""
    attempt = await limits.attempt(request.app[BUS], [(CLASSIFY_LIMIT, limit_subject(request))])
    if not attempt.allowed:
        retry_after = str(int(CLASSIFY_LIMIT.window_seconds))
        return web.json_response(
            {"error": TOO_MANY}, status=429, headers={"Retry-After": retry_after}
        )
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "body must be JSON"}, status=400)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return web.json_response({"error": "text must be a non-empty string"}, status=400)
    from store.classify import get_classifier

    proposal = await asyncio.to_thread(get_classifier().propose, text[:MAX_CHARS])
    return web.json_response(
        {
            "category": proposal.code,
            "name": proposal.name,
            "confidence": round(proposal.confidence, 4),
            "alternatives": [
                {"category": c, "name": n, "confidence": round(p, 4)}
                for c, n, p in proposal.alternatives
            ],
        }
    )


def setup(app: web.Application) -> None:
    """Register the classify API."""
    app.router.add_post("/api/v1/classify", classify)
