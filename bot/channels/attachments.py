"""Media a citizen sends (pictures, voice, video, files, locations, links), in one shape for
every channel.

An attachment is a small JSON-able dict kept in the stored message's payload
(`{"attachments": [...]}`): its `kind` plus the platform's own reference (a WeChat `MediaId` or
`PicUrl`, a Telegram `file_id`), never the content itself. The stored message text is a short
label such as `[图片]`, so agents read what arrived in the transcript as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Attachment = dict[str, Any]

IMAGE = "image"
VOICE = "voice"
VIDEO = "video"
FILE = "file"
LOCATION = "location"
LINK = "link"

LABELS: dict[str, str] = {
    IMAGE: "图片",
    VOICE: "语音",
    VIDEO: "视频",
    FILE: "文件",
    LOCATION: "位置",
    LINK: "链接",
}
MAX_FIELD = 500  # characters kept of any platform-supplied text (titles, labels, URLs)


def attachment(kind: str, **fields: Any) -> Attachment:
    """An attachment of `kind` with the non-empty `fields` (strings capped in length)."""
    out: Attachment = {"kind": kind}
    for key, value in fields.items():
        if value is None or value == "":
            continue
        out[key] = value[:MAX_FIELD] if isinstance(value, str) else value
    return out


def coordinate(raw: Any) -> float | None:
    """A latitude or longitude as a float, None if it is not a finite number in range."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if -180.0 <= value <= 180.0 else None


def label(item: Attachment) -> str:
    """How one attachment reads in a transcript: `[图片]`, `[位置] 幸福路8号 (30.1, 120.2)` …"""
    kind = str(item.get("kind", ""))
    head = f"[{LABELS.get(kind, '附件')}]"
    details: list[str] = []
    if kind == LOCATION:
        if item.get("label"):
            details.append(str(item["label"]))
        if item.get("lat") is not None and item.get("lng") is not None:
            details.append(f"({item['lat']}, {item['lng']})")
    elif kind == LINK:
        details += [str(item[k]) for k in ("title", "url") if item.get(k)]
    elif kind == FILE and item.get("file_name"):
        details.append(str(item["file_name"]))
    return " ".join([head, *details])


def transcript_text(text: str, items: Sequence[Attachment]) -> str:
    """The stored text of a message: one label per attachment, then what the citizen typed."""
    lines = [label(a) for a in items]
    if text:
        lines.append(text)
    return "\n".join(lines)
