"""Structure of the NLU dev set (tests/nlu/dev.yml) that bench/nlu.py scores the model on.

The dev set only measures anything if its labels exist, it covers every FAQ entry, and none of
its lines leaked into the training data.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bot.text import for_nlu
from store.tracking import normalize as normalize_tracking_no

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "tests" / "nlu" / "dev.yml"
DIALOGUE_INTENTS = (
    "greet thank goodbye request_human report_problem complain suggest check_status "
    "my_work_orders provide_phone affirm deny cancel out_of_scope chitchat rate leave_message bind"
).split()
ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def load_dev() -> list[dict]:
    """The dev items as written."""
    return yaml.safe_load(DEV.read_text(encoding="utf-8"))


def faq_entries() -> list[dict]:
    """Every entry of the knowledge base."""
    entries: list[dict] = []
    for path in sorted((ROOT / "data" / "faq").glob("*.yml")):
        entries.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["entries"])
    return entries


def squash(text: str) -> str:
    """Comparable form: the gateway's normalisation, lower case, no punctuation/space/symbols."""
    text = for_nlu(text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZSC")


def training_texts() -> set[str]:
    """Every training line: FAQ questions and examples, and all examples in data/nlu/*.yml."""
    texts: set[str] = set()
    for entry in faq_entries():
        texts.add(entry["question"])
        for example in entry.get("examples") or []:
            texts.add(example["text"] if isinstance(example, dict) else str(example))
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu") or []:
            examples = block.get("examples") or ""
            for line in examples.splitlines():
                line = line.strip()
                if line.startswith("- "):
                    texts.add(ANNOTATION.sub(r"\1", line[2:]))
    return {squash(t) for t in texts if t.strip()}


def test_every_item_has_a_text_and_a_label():
    dev = load_dev()
    assert isinstance(dev, list)
    for item in dev:
        assert set(item) == {"text", "label"}, item
        assert isinstance(item["text"], str) and item["text"].strip(), item
        assert isinstance(item["label"], str) and item["label"].strip(), item


def test_size_and_spread():
    dev = load_dev()
    counts = Counter(item["label"] for item in dev)
    faq = sum(n for label, n in counts.items() if label.startswith("faq/"))
    assert len(dev) >= 320
    assert faq >= 200
    assert len(dev) - faq >= 120
    thin = {intent: counts[intent] for intent in DIALOGUE_INTENTS if counts[intent] < 6}
    assert not thin, f"intents with fewer than 6 dev items: {thin}"


def test_faq_labels_are_knowledge_base_ids():
    known = {entry["id"] for entry in faq_entries()}
    unknown = sorted(
        {i["label"] for i in load_dev() if i["label"].startswith("faq/")}
        - {f"faq/{k}" for k in known}
    )
    assert not unknown, f"dev labels with no FAQ entry: {unknown}"


def test_every_faq_entry_has_a_dev_item():
    covered = {i["label"][4:] for i in load_dev() if i["label"].startswith("faq/")}
    missing = sorted({entry["id"] for entry in faq_entries()} - covered)
    assert not missing, f"FAQ entries without a dev item: {missing}"


def test_intent_labels_are_in_the_domain():
    domain_path = ROOT / "domain.yml"
    if not domain_path.exists():
        pytest.skip("domain.yml does not exist yet: intent labels cannot be checked")
    domain = yaml.safe_load(domain_path.read_text(encoding="utf-8"))
    intents = {next(iter(i)) if isinstance(i, dict) else i for i in domain.get("intents") or []}
    used = {i["label"] for i in load_dev() if not i["label"].startswith("faq/")}
    assert not used - intents, f"dev labels that are not domain intents: {sorted(used - intents)}"
    assert "faq" in intents


def test_no_dev_text_is_a_training_example():
    training = training_texts()
    assert training, "no training data found under data/"
    leaked = [i["text"] for i in load_dev() if squash(i["text"]) in training]
    assert not leaked, f"dev texts identical to training examples: {leaked}"


def test_dev_texts_are_distinct():
    counts = Counter(squash(i["text"]) for i in load_dev())
    assert not [t for t, n in counts.items() if n > 1]


def test_no_real_looking_personal_numbers():
    """Phone-like numbers are obvious placeholders; tracking numbers carry a valid check char."""
    for item in load_dev():
        digits_runs = re.findall(r"\d[\d ]{9,}\d", item["text"])
        for run in digits_runs:
            digits = run.replace(" ", "")
            if len(digits) == 11 and digits.startswith("1"):
                assert digits[3:].count("0") >= 7, f"real-looking phone number: {item['text']}"
            assert len(digits) < 15, f"looks like an ID number: {item['text']}"
        for number in re.findall(r"12345-\d{8}-[0-9A-Z]{9}", item["text"]):
            assert normalize_tracking_no(number) == number, f"invalid tracking number: {number}"


def test_multiturn_set_expects_real_entries_and_is_not_training_data():
    """tests/nlu/multiturn.yml: every expectation is an entry id or handoff / intake / none, and
    no opening question is a training example (the follow-ups are the brief's own phrases,
    "需要带什么材料", "那买房呢" …, that data/nlu/questions.yml teaches DIET as questions)."""
    convs = yaml.safe_load((ROOT / "tests" / "nlu" / "multiturn.yml").read_text(encoding="utf-8"))
    known = {entry["id"] for entry in faq_entries()} | {"handoff", "intake", "none"}
    turns = [t for c in convs for t in c["turns"]]
    assert len(convs) >= 15 and len(turns) >= 40
    assert not [t["expect"] for t in turns if t["expect"] not in known]
    training = training_texts()
    assert not [c["turns"][0]["text"] for c in convs if squash(c["turns"][0]["text"]) in training]
