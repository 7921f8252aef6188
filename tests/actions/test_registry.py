"""The action server serves exactly the custom actions the domain declares."""

from __future__ import annotations

from pathlib import Path

import yaml
from rasa_sdk.executor import ActionExecutor

ROOT = Path(__file__).resolve().parents[2]


def test_every_domain_action_is_served_and_nothing_else() -> None:
    executor = ActionExecutor()
    executor.register_package("actions")
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert set(executor.actions) == set(domain["actions"])


def test_welcome_topic_buttons_point_at_knowledge_base_files() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    payloads = [b["payload"] for b in domain["responses"]["utter_welcome"][0]["buttons"]]
    topics = [p.split('"topic":"')[1].split('"')[0] for p in payloads if "browse_topic" in p]
    assert topics and all((ROOT / "data" / "faq" / f"{t}.yml").exists() for t in topics)
    assert "/report_problem" in payloads and "/check_status" in payloads
