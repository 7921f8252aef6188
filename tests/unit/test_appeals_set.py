"""The appeal sets (tests/appeals/*.yml) keep the documented format, and bench/appeals.py scores
fields and routes the way docs/classify.md describes."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from store.categories import load_taxonomy
from store.crypto import normalize_mobile
from store.intake import _prepare

ROOT = Path(__file__).resolve().parents[2]
SETS = sorted((ROOT / "tests" / "appeals").glob("*.yml"))


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_appeals", ROOT / "bench" / "appeals.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dev_set_is_large_enough_to_measure() -> None:
    data = yaml.safe_load((ROOT / "tests" / "appeals" / "dev.yml").read_text(encoding="utf-8"))
    assert len(data["appeals"]) >= 200
    assert len(data["questions"]) >= 60
    assert len(data["mixed"]) >= 5


@pytest.mark.parametrize("path", SETS, ids=lambda p: p.name)
def test_every_expected_field_is_in_its_text(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    top = {node.code for node in load_taxonomy().top_level()}
    for kind in ("appeals", "mixed"):
        for item in data.get(kind) or []:
            assert set(item) == {"text", "category", "location", "name", "phone"}, item
            text = _prepare(item["text"])
            assert item["category"] in top
            if item["location"]:
                assert _prepare(item["location"]) in text, item["location"]
            if item["name"]:
                assert item["name"][0] in text, item["name"]
            if item["phone"]:
                assert normalize_mobile(item["phone"]) == item["phone"]
                assert item["phone"] in re.sub(r"[\s-]", "", text), item["phone"]
    for item in data.get("questions") or []:
        assert item["category"] in top and item["text"].strip()


def test_location_and_name_matching_rules() -> None:
    bench = _bench()
    assert bench.location_matches("幸福里小区3栋", "城南区幸福里小区3栋")
    assert bench.location_matches("人民医院门口", "人民医院")
    assert not bench.location_matches("城南区", "城南区幸福里小区3栋")
    assert not bench.location_matches("建设路", "解放路")
    assert bench.name_matches("陈", "陈女士") and bench.name_matches("王秀英", "王秀英")
    assert not bench.name_matches("王先生", "李先生")


def test_routes_count_intake_and_answer_actions() -> None:
    bench = _bench()
    assert bench.route_of({"action": "action_start_work_order"}) == "intake"
    assert bench.route_of({"action": "action_answer_faq"}) == "answer"
    assert bench.route_of({"action": "action_clarify"}) == "other"
