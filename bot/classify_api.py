"""`POST /api/v1/classify {"text": ...}` → the proposed category for a citizen's description."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

MAX_CHARS = 4000


async def classify(request: web.Request) -> web.Response:
    """Propose a top-level category; the caller (form, console) asks the citizen to confirm."""
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
