"""The normalised message every channel adapter produces and the replies it renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Speaker = Literal["citizen", "bot", "agent", "system"]

# `InboundMessage.metadata` key: the sender's per-address limit key (bot/client_address.py), set
# by channels that see the citizen's own connection (the web widget); platforms' webhooks don't.
CLIENT_SUBJECT = "client_subject"


@dataclass(frozen=True)
class Button:
    """A quick reply: what the citizen sees and what is sent back when it is chosen."""

    title: str
    payload: str


@dataclass(frozen=True)
class StatusNotice:
    """A work-order status push in structured form.

    Platforms that cannot send free text outside a reply window (WeChat's 48 hours) fill a
    template with it instead; every field is plain text for the citizen.
    """

    tracking_no: str
    status: str  # what the citizen reads: 已派单, 办理中, 已办结 …
    time: str  # when it changed, local time, e.g. 2026年1月5日 14:30
    url: str | None = None  # the public lookup page, when the gateway has a public address


@dataclass(frozen=True)
class Reply:
    """One message to a citizen, from the bot, an agent or the system (status pushes)."""

    text: str
    buttons: tuple[Button, ...] = ()
    link: str | None = None
    sender: Speaker = "bot"
    notice: StatusNotice | None = None  # set on status pushes (template fallback)

    def to_rest(self, recipient_id: str) -> dict[str, Any]:
        """Rasa's REST channel shape: `{"recipient_id", "text", "buttons"?}`."""
        out: dict[str, Any] = {"recipient_id": recipient_id, "text": self.text}
        if self.buttons:
            out["buttons"] = [{"title": b.title, "payload": b.payload} for b in self.buttons]
        if self.link:
            out["link"] = self.link
        return out

    @classmethod
    def from_rasa(cls, item: dict[str, Any]) -> Reply | None:
        """Build a reply from one item of Rasa's REST answer; None if it carries nothing."""
        text = item.get("text") or ""
        buttons = tuple(
            Button(title=str(b.get("title", "")), payload=str(b.get("payload", "")))
            for b in item.get("buttons") or []
        )
        custom = item.get("custom") or {}
        link = custom.get("link") if isinstance(custom, dict) else None
        if not text and not buttons:
            return None
        return cls(text=text, buttons=buttons, link=link)

    def as_numbered_text(self) -> str:
        """Fallback for platforms without buttons: the options as a numbered list."""
        if not self.buttons:
            return self.text
        lines = [self.text, ""] if self.text else []
        lines += [f"{i}. {b.title}" for i, b in enumerate(self.buttons, start=1)]
        lines.append("请回复数字选择。")
        return "\n".join(lines)


@dataclass(frozen=True)
class InboundMessage:
    """What a citizen sent, whatever the channel."""

    channel: str
    external_id: str
    text: str
    message_id: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
