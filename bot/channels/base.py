"""What every channel adapter offers the rest of the gateway."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.messages import Reply


class ChannelAdapter(Protocol):
    """Sends replies to one address on one platform, outside a request/response cycle.

    Used for agent replies, status pushes and answers that missed a platform's reply window.
    """

    name: str

    async def send(self, external_id: str, replies: Sequence[Reply]) -> None:
        """Deliver `replies` to `external_id`; raise DeliveryError when the platform refuses."""


class DeliveryError(RuntimeError):
    """The platform refused or could not be reached.

    `retry` says whether trying the same message again later may succeed: True for transient
    failures (network errors, timeouts, flood limits, the platform's own 5xx or "system busy"),
    False for refusals that will not change by themselves (blocked bot, unsubscribed follower,
    bad address, nothing configured to send it with).
    """

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class ChannelRegistry:
    """Adapters by channel name."""

    def __init__(self) -> None:
        self._adapters: dict[str, ChannelAdapter] = {}

    def register(self, adapter: ChannelAdapter) -> None:
        """Add (or replace) the adapter for `adapter.name`."""
        self._adapters[adapter.name] = adapter

    def get(self, channel: str) -> ChannelAdapter | None:
        """The adapter for `channel`, or None if that channel is not configured."""
        return self._adapters.get(channel)

    def names(self) -> list[str]:
        """Configured channel names."""
        return sorted(self._adapters)
