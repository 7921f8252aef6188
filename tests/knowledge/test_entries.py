"""Loading the knowledge base, and the package's import direction."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

from knowledge.entries import FAQ_DIR, KnowledgeBase

PACKAGE = Path(__file__).resolve().parents[2] / "knowledge"


def test_examples_and_not_for_are_loaded_and_malformed_entries_skipped(small_dir: Path) -> None:
    kb = KnowledgeBase.load(small_dir)
    assert sorted(e.id for e in kb) == ["t_card_loss", "t_flexible"]
    flexible = kb.get("t_flexible")
    assert flexible is not None
    assert flexible.not_for == ("单位职工的缴费基数怎么定",)
    assert flexible.texts == ("灵活就业人员社保缴费基数是多少？", "自由职业交社保按什么基数")
    assert flexible.is_expired(date(2026, 1, 1))
    assert not kb.get("t_card_loss").is_expired(date(2026, 1, 1))


def test_the_real_knowledge_base_loads_with_examples() -> None:
    kb = KnowledgeBase.load(FAQ_DIR)
    assert len(kb) >= 140
    assert all(entry.examples for entry in kb)
    assert {e.topic_key for e in kb} == {
        "business",
        "hotline",
        "housing_fund",
        "medical_insurance",
        "social_insurance",
    }


def test_knowledge_imports_neither_bot_actions_nor_rasa() -> None:
    banned = {"bot", "actions", "rasa", "rasa_sdk"}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
