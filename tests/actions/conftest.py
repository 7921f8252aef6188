"""Fixtures for driving actions with saved trackers against a real store (SQLite + PostgreSQL)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from knowledge.entries import KnowledgeBase
from store import conversations
from store.bus import create_bus
from store.categories import seed_taxonomy
from store.client import StoreClient
from store.db import Database
from tests.conftest import REDIS_URL

HERE = Path(__file__).parent
_PLACEHOLDER = re.compile(r"\$([A-Z][A-Z0-9_]*)")
TRACKERS = HERE / "trackers"


def load_tracker(name: str, **values: Any) -> Tracker:
    """A saved tracker with `$NAME` placeholders replaced (sender id, tracking number …)."""

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1).lower(), m.group(0))), node)
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    state = fill(json.loads((TRACKERS / f"{name}.json").read_text(encoding="utf-8")))
    return Tracker.from_dict(state)


def texts(dispatcher: CollectingDispatcher) -> list[str]:
    """What the citizen would read."""
    return [m.get("text") or "" for m in dispatcher.messages]


def buttons(dispatcher: CollectingDispatcher) -> list[dict[str, str]]:
    """Every button sent."""
    return [b for m in dispatcher.messages for b in m.get("buttons") or []]


async def _seed_categories(db: Database) -> None:
    async with db.session() as s:
        await seed_taxonomy(s)


@pytest.fixture
async def store(db: Database) -> AsyncIterator[StoreClient]:
    """A store client on the test database (taxonomy seeded) and the real Redis."""
    await _seed_categories(db)
    bus = create_bus(REDIS_URL, prefix=f"h12345test:{uuid.uuid4().hex}:")
    client = StoreClient(db, bus)
    yield client
    await client.bus.close()


async def new_sender(store: StoreClient, external_id: str = "citizen-1") -> str:
    """A conversation as the gateway would create it; returns Rasa's sender id."""
    async with store.db.session() as s:
        conv = await conversations.ensure_conversation(s, "rest", external_id)
        return conv.public_id


@pytest.fixture
async def sender(store: StoreClient) -> str:
    """Sender id of one citizen's conversation."""
    return await new_sender(store)


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    """The real domain, as Rasa sends it to the action server."""
    return yaml.safe_load((HERE.parent.parent / "domain.yml").read_text(encoding="utf-8"))


@pytest.fixture
def knowledge() -> KnowledgeBase:
    """The small test knowledge base (one current, one local, one stale entry)."""
    return KnowledgeBase.load(HERE / "kb")
