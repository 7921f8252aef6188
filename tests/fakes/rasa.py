"""A local stand-in for Rasa's REST channel, for tests that are not about the dialogue itself.

It answers `POST /webhooks/rest/webhook` with Rasa's JSON list shape. The reply is computed by
a replaceable function, so a test can make it slow, fail or answer with buttons.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

Responder = Callable[[str, str], list[dict[str, Any]]]


def echo(sender: str, text: str) -> list[dict[str, Any]]:
    """Default: greets with buttons on 你好 and on the greet intent's payload, otherwise echoes."""
    if "你好" in text or text == "/greet":
        return [
            {
                "recipient_id": sender,
                "text": "您好，我是12345智能助手。",
                "buttons": [
                    {"title": "社保", "payload": "/faq_topic_si"},
                    {"title": "转人工", "payload": "/request_human"},
                ],
            }
        ]
    return [{"recipient_id": sender, "text": f"收到：{text}"}]


class FakeRasa(LocalServer):
    """Start with `await fake.start()`; `fake.url` is its base URL."""

    def __init__(self, responder: Responder = echo) -> None:
        self.responder = responder
        self.delay = 0.0
        self.stall: asyncio.Event | None = None  # turns are answered only once this is set
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self.understood: list[dict[str, Any]] = []  # turns answered 200, as Rasa's tracker keeps
        self._answers: list[list[dict[str, Any]]] = []  # what each understood turn uttered
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self._webhook)
        app.router.add_get("/webhooks/rest/", self._status)
        app.router.add_get("/conversations/{sender}/tracker", self._tracker)
        super().__init__(app)

    @property
    def url(self) -> str:
        """Base URL to configure the client under test with."""
        return self.url_for()

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.stall is not None:  # a turn that hangs in Rasa (a slow action, say)
            await self.stall.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": "boom"}, status=self.status)
        answer = self.responder(body["sender"], body["message"])
        self.understood.append(body)
        self._answers.append(answer)
        return web.json_response(answer)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _tracker(self, request: web.Request) -> web.Response:
        """Rasa's tracker shape: one `user` event per message received from this sender, with
        the metadata the gateway sent and a parse result from `understand`, followed by a
        `bot` event per utterance of that turn."""
        sender = request.match_info["sender"]
        events: list[dict[str, Any]] = []
        for body, answer in zip(self.understood, self._answers, strict=True):
            if body["sender"] != sender:
                continue
            events.append(
                {
                    "event": "user",
                    "text": body["message"],
                    "parse_data": {"text": body["message"], "intent": understand(body["message"])},
                    "metadata": body.get("metadata") or {},
                }
            )
            events += [
                {
                    "event": "bot",
                    "text": item.get("text"),
                    "data": {"buttons": item.get("buttons"), "custom": item.get("custom")},
                    "metadata": {},
                }
                for item in answer
            ]
        return web.json_response({"sender_id": sender, "events": events})


def understand(text: str) -> dict[str, Any]:
    """The fake's NLU: greetings are recognised, everything else is a shaky guess."""
    if "你好" in text or text == "/greet":
        return {"name": "greet", "confidence": 0.99}
    return {"name": "nlu_fallback", "confidence": 0.42}
