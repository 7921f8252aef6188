"""The only way the gateway talks to Rasa: its REST channel, on a private address."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.messages import Reply

MESSAGE_ID = "message_id"  # metadata key: the stored Message this turn came from


@dataclass(frozen=True)
class UserTurn:
    """What Rasa understood of one stored citizen message."""

    message_id: int
    intent: str
    confidence: float


class RasaUnavailable(RuntimeError):
    """Rasa did not answer in time, answered with an error, or answered nothing."""


class RasaTimeout(RasaUnavailable):
    """Rasa did not answer within the timeout, but the turn is still running there.

    `pending` is the request itself, left open so the turn is not cut off half way (Rasa
    would then lose what its actions did): it resolves to the turn's replies when Rasa
    finishes (or raises RasaUnavailable). Whoever catches this awaits `pending` or calls
    `abandon()`.
    """

    def __init__(self, pending: asyncio.Task[list[Reply]]) -> None:
        super().__init__("TimeoutError")
        self.pending = pending

    def abandon(self) -> None:
        """Nobody wants the late replies: close the request."""
        self.pending.cancel()


class RasaClient:
    """Sends one citizen turn to Rasa and returns its replies."""

    def __init__(
        self, base_url: str, http: aiohttp.ClientSession, timeout: float, token: str = ""
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.timeout = timeout
        self._token = token

    async def send(
        self, sender: str, text: str, metadata: dict[str, Any] | None = None
    ) -> list[Reply]:
        """Replies for one turn; raises RasaUnavailable on timeout, error or an empty answer.

        Rasa's REST channel swallows action errors and answers `[]`; every turn of our dialogue
        utters something, so an empty list is treated as a failure.
        """
        body = {"sender": sender, "message": text, "metadata": metadata or {}}
        request = asyncio.create_task(self._post(body))
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(request)
        except TimeoutError as exc:
            raise RasaTimeout(request) from exc
        except asyncio.CancelledError:
            request.cancel()
            raise

    async def _post(self, body: dict[str, Any]) -> list[Reply]:
        """One turn over Rasa's REST channel, bounded only by the HTTP session's timeout."""
        try:
            async with self.http.post(f"{self.base_url}/webhooks/rest/webhook", json=body) as resp:
                if resp.status != 200:
                    raise RasaUnavailable(f"HTTP {resp.status}")
                items = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise RasaUnavailable(type(exc).__name__) from exc
        replies = [r for r in (Reply.from_rasa(i) for i in items or []) if r is not None]
        if not replies:
            raise RasaUnavailable("empty answer")
        return replies

    async def _tracker(self, sender: str) -> dict[str, Any] | None:
        """Rasa's tracker of a conversation (all events); None if the HTTP API is off."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self.http.get(
                    f"{self.base_url}/conversations/{sender}/tracker",
                    params={"include_events": "ALL", "token": self._token},
                ) as resp:
                    if resp.status != 200:
                        return None
                    tracker = await resp.json()
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return None
        return tracker if isinstance(tracker, dict) else None

    async def replies_to(self, sender: str, message_id: int) -> list[Reply] | None:
        """What the bot answered to one stored message, read from Rasa's tracker: the bot
        utterances after the user event carrying `message_id` in its metadata. None when Rasa
        has not completed that turn (or its HTTP API cannot be read): send it again."""
        tracker = await self._tracker(sender)
        if tracker is None:
            return None
        replies: list[Reply] | None = None
        for event in tracker.get("events") or []:
            kind = event.get("event")
            if kind == "user":
                if replies is not None:
                    break
                if (event.get("metadata") or {}).get(MESSAGE_ID) == message_id:
                    replies = []
            elif kind == "bot" and replies is not None:
                data = event.get("data") or {}
                item = {
                    "text": event.get("text"),
                    **{k: data.get(k) for k in ("buttons", "custom")},
                }
                reply = Reply.from_rasa(item)
                if reply is not None:
                    replies.append(reply)
        return replies or None

    async def user_turns(self, sender: str) -> list[UserTurn]:
        """Intent and confidence of each citizen turn Rasa has seen in this conversation,
        keyed by the gateway's message id (sent as metadata). [] if the HTTP API is off."""
        tracker = await self._tracker(sender)
        if tracker is None:
            return []
        turns = []
        for event in tracker.get("events") or []:
            message_id = (event.get("metadata") or {}).get(MESSAGE_ID)
            intent = (event.get("parse_data") or {}).get("intent") or {}
            if event.get("event") == "user" and isinstance(message_id, int) and intent.get("name"):
                turns.append(
                    UserTurn(message_id, str(intent["name"]), float(intent.get("confidence") or 0))
                )
        return turns

    async def ping(self) -> bool:
        """True if Rasa answers and has a model loaded."""
        try:
            async with asyncio.timeout(2):
                async with self.http.get(f"{self.base_url}/webhooks/rest/") as resp:
                    return resp.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False
