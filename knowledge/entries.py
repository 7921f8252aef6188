"""The knowledge base (data/faq/*.yml): entries, their examples and what they are not for.

Each file holds one topic (`topic:` name, file stem = topic key) and a list of `entries`:
`id`, `subtopic`, `question`, `answer`, `source`, `region`, `effective_from`, `review_by`,
`examples` (ways citizens ask for this answer) and the optional `not_for` (questions that look
alike but that this entry must NOT answer: a sole proprietorship where the entry is about
companies, a named city's temporary measure where the entry states the national rule).
An entry past `review_by` is never served.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml

FAQ_DIR = Path(__file__).resolve().parent.parent / "data" / "faq"

# File stem → words citizens use for the topic (files may also define `topic`).
TOPIC_KEYWORDS: dict[str, tuple[str, ...]] = {
    "social_insurance": ("社保", "社会保险", "养老", "失业", "工伤", "生育", "社保卡"),
    "medical_insurance": ("医保", "医疗保险", "报销", "异地就医", "门诊"),
    "housing_fund": ("公积金", "公基金", "公積金"),
    "business": ("企业", "开办", "营业执照", "开公司", "个体", "营商", "注册公司"),
    "hotline": ("12345", "热线"),
}


@dataclass(frozen=True)
class FaqEntry:
    """One answer of the knowledge base."""

    id: str
    topic_key: str
    topic: str
    subtopic: str
    question: str
    answer: str
    source: str
    region: str
    review_by: date | None
    examples: tuple[str, ...] = ()
    not_for: tuple[str, ...] = ()
    effective_from: date | None = None

    def is_expired(self, today: date) -> bool:
        """True when the entry is past its review date and must not be served."""
        return self.review_by is not None and today > self.review_by

    @property
    def texts(self) -> tuple[str, ...]:
        """The canonical question and its examples: what the entry answers."""
        return (self.question, *self.examples)


def _as_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _lines(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item).strip() for item in value if str(item or "").strip())


def entry_from_dict(raw: dict, topic_key: str, topic: str) -> FaqEntry | None:
    """One entry from its YAML mapping, or None when id, question or answer is missing."""
    if not raw.get("id") or not raw.get("question") or not raw.get("answer"):
        return None
    return FaqEntry(
        id=str(raw["id"]),
        topic_key=topic_key,
        topic=topic,
        subtopic=str(raw.get("subtopic") or ""),
        question=str(raw["question"]).strip(),
        answer=str(raw["answer"]).strip(),
        source=str(raw.get("source") or "").strip(),
        region=str(raw.get("region") or "national"),
        review_by=_as_date(raw.get("review_by")),
        examples=_lines(raw.get("examples")),
        not_for=_lines(raw.get("not_for")),
        effective_from=_as_date(raw.get("effective_from")),
    )


class KnowledgeBase:
    """Entries by id and by topic."""

    def __init__(self, entries: list[FaqEntry]) -> None:
        self.entries = {e.id: e for e in entries}
        self.by_topic: dict[str, list[FaqEntry]] = {}
        for entry in entries:
            self.by_topic.setdefault(entry.topic_key, []).append(entry)

    @classmethod
    def load(cls, faq_dir: Path) -> KnowledgeBase:
        """Read every *.yml file of `faq_dir`; malformed entries are skipped."""
        entries: list[FaqEntry] = []
        for path in sorted(Path(faq_dir).glob("*.yml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            topic = str(doc.get("topic") or path.stem)
            for raw in doc.get("entries") or []:
                entry = entry_from_dict(raw or {}, path.stem, topic)
                if entry is not None:
                    entries.append(entry)
        return cls(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[FaqEntry]:
        return iter(self.entries.values())

    def get(self, entry_id: str) -> FaqEntry | None:
        """The entry with this id, or None."""
        return self.entries.get(entry_id)

    def menu(self, topic_key: str, limit: int = 6) -> list[FaqEntry]:
        """Up to `limit` questions of a topic, one per subtopic first, for a topic menu."""
        entries = self.by_topic.get(topic_key, [])
        picked: list[FaqEntry] = []
        seen: set[str] = set()
        for entry in entries:
            if entry.subtopic not in seen:
                seen.add(entry.subtopic)
                picked.append(entry)
        for entry in entries:
            if entry not in picked:
                picked.append(entry)
        return picked[:limit]

    def topic_name(self, topic_key: str) -> str | None:
        """The Chinese topic name of a file, or None if the topic has no entries."""
        entries = self.by_topic.get(topic_key)
        return entries[0].topic if entries else None


def topic_from_text(text: str) -> str | None:
    """The topic key a free-text request mentions, if any."""
    for key, words in TOPIC_KEYWORDS.items():
        if any(word in text for word in words):
            return key
    return None


def faq_dir() -> Path:
    """The knowledge-base directory of this process (FAQ_DIR env var overrides data/faq)."""
    return Path(os.environ.get("FAQ_DIR") or FAQ_DIR)


@lru_cache(maxsize=1)
def get_knowledge() -> KnowledgeBase:
    """The knowledge base of this process (FAQ_DIR env var overrides data/faq)."""
    return KnowledgeBase.load(faq_dir())
