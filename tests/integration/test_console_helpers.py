"""Helpers shared by the console and hand-off tests (no tests here): console users, a signed-in
HTTP client with its own cookie jar, a recording stand-in for a citizen's messaging platform."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.messages import Reply
from bot.settings import Settings
from store import agents
from store.db import Database

PASSWORD = "correct horse battery 9"


def unique(prefix: str = "agent") -> str:
    """A username no other test uses (Redis keys outlive a test's database)."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def make_agent(database_url: str, username: str, role: str = "agent") -> int:
    """Create a console user; returns its id."""
    db = Database(database_url)
    try:
        async with db.session() as s:
            agent = await agents.create_agent(
                s, username, PASSWORD, role=role, display_name=f"坐席{username[-4:]}"
            )
            return agent.id
    finally:
        await db.close()


class Console:
    """One browser-like console user: own cookie jar, CSRF header on writes."""

    def __init__(self, gateway: TestClient) -> None:
        self.base = str(gateway.make_url("")).rstrip("/")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def login(self, username: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        resp = await self.http.post(
            self.base + "/console/api/login", json={"username": username, "password": password}
        )
        if resp.status == 200:
            self.csrf = (await resp.json())["csrf"]
        return resp

    async def get(self, path: str) -> aiohttp.ClientResponse:
        return await self.http.get(self.base + path)

    async def post(
        self, path: str, body: dict[str, Any] | None = None, *, csrf: bool = True
    ) -> aiohttp.ClientResponse:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        return await self.http.post(self.base + path, json=body or {}, headers=headers)

    async def ws(self) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(self.base + "/console/ws", origin=self.base)
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        return ws

    async def close(self) -> None:
        await self.http.close()


async def next_event(
    ws: aiohttp.ClientWebSocketResponse, want, within: float = 5.0
) -> dict[str, Any]:
    """The first event for which `want(event)` is true (others are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("no matching console event")
        event = await ws.receive_json(timeout=remaining)
        if want(event):
            return event


class RecordingChannel:
    """Stands in for a citizen's messaging platform: keeps what the gateway pushes to it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, Reply]] = []

    async def send(self, external_id: str, replies: Sequence[Reply]) -> None:
        self.sent.extend((external_id, r) for r in replies)

    def texts(self, external_id: str) -> list[str]:
        return [r.text for e, r in self.sent if e == external_id]


async def wait_until(predicate, within: float = 5.0) -> None:
    """Poll `predicate()` until true; TimeoutError after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def claim_by_hand(settings: Settings) -> Settings:
    """Settings where agents claim hand-offs themselves and the service is always open."""
    return settings.model_copy(
        update={"console_auto_assign": False, "service_hours": "mon-sun 00:00-24:00"}
    )
