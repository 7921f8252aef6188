"""Shared helpers for actions: the store client, buttons, reading the latest user message."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker

from store.client import StoreClient
from store.masking import mask_text

_shared_store: StoreClient | None = None

HUMAN_BUTTON = {"title": "转人工", "payload": "/request_human"}
MESSAGE_BUTTON = {"title": "登记工单", "payload": "/leave_message"}
NONE_OF_THESE_BUTTON = {"title": "都不是，转人工", "payload": "/request_human"}
MESSAGE_ID = "message_id"  # turn metadata the gateway sends: its stored message's id


def shared_store() -> StoreClient:
    """The process-wide store client, built from the environment on first use."""
    global _shared_store
    if _shared_store is None:
        _shared_store = StoreClient.from_env()
    return _shared_store


class StoreAction(Action, ABC):
    """An action that talks to the store; tests pass their own client for a temporary DB."""

    @abstractmethod
    def name(self) -> str:
        """The action's name in the domain."""

    def __init__(self, store: StoreClient | None = None) -> None:
        self._store = store

    @property
    def store(self) -> StoreClient:
        """The injected client, or the shared one."""
        return self._store if self._store is not None else shared_store()


def button(title: str, payload: str) -> dict[str, str]:
    """A quick-reply button in Rasa's format."""
    return {"title": title, "payload": payload}


def latest_text(tracker: Tracker) -> str:
    """The latest user text (payloads like `/intent{...}` included as typed)."""
    return (tracker.latest_message or {}).get("text") or ""


def latest_intent(tracker: Tracker) -> str | None:
    """The intent name of the latest user message."""
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


def entity_value(tracker: Tracker, entity: str) -> Any:
    """The first value of `entity` in the latest user message, or None."""
    for ent in (tracker.latest_message or {}).get("entities") or []:
        if ent.get("entity") == entity and ent.get("value") not in (None, ""):
            return ent["value"]
    return None


def latest_user_timestamp(tracker: Tracker) -> float | None:
    """Timestamp of the latest `user` event (identifies the message that confirmed an action)."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event.get("timestamp")
    return None


def latest_message_id(tracker: Tracker) -> int | None:
    """The gateway's stored message of the latest user turn (metadata `message_id`), if any."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            value = (event.get("metadata") or {}).get(MESSAGE_ID)
            try:
                return int(value) if value is not None else None
            except (TypeError, ValueError):
                return None
    return None


def recent_intents(tracker: Tracker, limit: int = 5) -> list[str]:
    """The last `limit` user intents, oldest first."""
    intents = [
        ((e.get("parse_data") or {}).get("intent") or {}).get("name")
        for e in tracker.events
        if e.get("event") == "user"
    ]
    return [i for i in intents if i][-limit:]


def is_payload(text: str) -> bool:
    """True for button payloads such as `/rate{...}`."""
    return text.startswith("/")


def safe_excerpt(text: str, limit: int = 200) -> str:
    """Citizen text for a hand-off context: phone and ID numbers masked, length capped."""
    return mask_text(re.sub(r"\s+", " ", text)).strip()[:limit]
