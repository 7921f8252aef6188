"""Canned replies for agents, with variables filled from the conversation."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data" / "canned_replies.yml"
VARIABLES = ("name", "tracking_no", "agent")


@dataclass(frozen=True)
class CannedReply:
    """One template: a short title for the picker and the text with `{variables}`."""

    key: str
    title: str
    text: str

    def render(self, values: dict[str, Any]) -> str:
        """Fill known variables; unknown or empty ones stay visible as `{name}`."""
        return fill(self.text, values)


def fill(template: str, values: dict[str, Any]) -> str:
    """`str.format_map` that only substitutes plain known names, never attributes or indexes."""
    present = {k: str(v) for k, v in values.items() if k in VARIABLES and v not in (None, "")}
    out = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        out.append(present.get(field, "{" + field + "}") if field.isidentifier() else field)
    return "".join(out)


@lru_cache(maxsize=4)
def load(path: Path = DATA) -> tuple[CannedReply, ...]:
    """Read the YAML list of canned replies."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return tuple(CannedReply(str(i["key"]), str(i["title"]), str(i["text"])) for i in raw)


def rendered(values: dict[str, Any], path: Path = DATA) -> list[dict[str, str]]:
    """Every canned reply with its text filled in, for the console's picker."""
    return [{"key": c.key, "title": c.title, "text": c.render(values)} for c in load(path)]
