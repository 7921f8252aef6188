"""scripts/gen_faq_nlu.py turns knowledge-base entries into retrieval intents and responses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def generate(faq_dir: Path, out: Path) -> dict:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "gen_faq_nlu.py"),
            "--faq-dir",
            str(faq_dir),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return yaml.safe_load(out.read_text(encoding="utf-8"))


def test_every_entry_becomes_an_intent_with_its_question_and_answer(tmp_path: Path) -> None:
    doc = generate(Path(__file__).parent / "kb", tmp_path / "faq.yml")
    intents = {item["intent"]: item["examples"] for item in doc["nlu"]}
    assert set(intents) == {"faq/si_test_transfer", "faq/si_test_card_lost", "faq/si_test_stale"}
    first = intents["faq/si_test_transfer"].splitlines()
    assert first[:2] == ["- 养老保险跨省怎么转移？", "- 换城市工作了社保怎么转"]
    answer = doc["responses"]["utter_faq/si_test_card_lost"][0]["text"]
    assert answer == "先挂失，再到社保卡服务网点或线上补办。"


def test_annotation_syntax_in_examples_is_neutralised(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    entry = {
        "id": "hl_x",
        "question": "什么是[12345](热线)？",
        "answer": "政务服务便民热线。",
        "examples": ["  多行\n  例句 ", "什么是[12345](热线)？"],
    }
    (kb / "x.yml").write_text(
        yaml.safe_dump({"topic": "t", "entries": [entry]}, allow_unicode=True), encoding="utf-8"
    )
    doc = generate(kb, tmp_path / "faq.yml")
    assert doc["nlu"][0]["examples"].splitlines() == ["- 什么是【12345】(热线)？", "- 多行 例句"]
