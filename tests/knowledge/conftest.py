"""Fixtures for the knowledge package: the real knowledge base, and a small one on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from knowledge.embed import Embedder
from knowledge.entries import FAQ_DIR, KnowledgeBase
from knowledge.selector import Selector

SMALL_KB = {
    "topic": "社会保险",
    "entries": [
        {
            "id": "t_card_loss",
            "subtopic": "社保卡",
            "question": "社保卡丢了怎么挂失？",
            "answer": "可拨打服务电话或在电子社保卡里挂失。\n需要材料：身份证。",
            "source": "测试",
            "region": "national",
            "review_by": "2099-12-31",
            "examples": ["社保卡掉了怎么办", "社保卡找不到了先挂失吗"],
        },
        {
            "id": "t_flexible",
            "subtopic": "缴费",
            "question": "灵活就业人员社保缴费基数是多少？",
            "answer": "这是一条过期的答案。",
            "source": "旧文件",
            "region": "local",
            "review_by": "2020-01-31",
            "examples": ["自由职业交社保按什么基数"],
            "not_for": ["单位职工的缴费基数怎么定"],
        },
        {"id": "t_broken", "question": "没有答案的条目"},
    ],
}


def write_kb(directory: Path, data: dict) -> Path:
    """Write one knowledge-base file and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "social_insurance.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def real_selector() -> Selector:
    """The selector over data/faq with the shipped calibration (embeddings from the disk cache;
    the first run on a fresh machine embeds ~2,300 texts)."""
    return Selector(KnowledgeBase.load(FAQ_DIR))


@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    """A small knowledge base on disk (one servable entry, one expired, one malformed)."""
    write_kb(tmp_path / "faq", SMALL_KB)
    return tmp_path / "faq"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An empty embedding cache of its own."""
    return tmp_path / "e5"


@pytest.fixture
def small_selector(small_dir: Path, cache_dir: Path) -> Selector:
    return Selector(KnowledgeBase.load(small_dir), embedder=Embedder(cache_dir))
