"""Answers, follow-ups, hand-off anywhere and appeals, through the three real processes (the
gateway, Rasa with the trained model, the action server with the knowledge package)."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_rest_end_to_end import say, text_of

pytestmark = pytest.mark.e2e


def buttons_of(replies: list[dict]) -> list[dict]:
    return [b for r in replies for b in r.get("buttons") or []]


def test_a_question_is_answered_from_the_knowledge_base_with_its_source(stack: Stack) -> None:
    sender = f"e2e-{uuid.uuid4().hex[:8]}"
    replies = say(stack, sender, "社保卡的密码忘了 被锁住了怎么办")
    text = text_of(replies)
    if "您想问的是" in text:  # the selector asked back: the right entry is among the buttons
        assert "社保卡密码忘了或者被锁了怎么办？" in [b["payload"] for b in buttons_of(replies)]
        replies = say(stack, sender, "社保卡密码忘了或者被锁了怎么办？")
        text = text_of(replies)
    assert "依据：" in text and "密码" in text


def test_a_follow_up_is_answered_from_the_entry_just_discussed(stack: Stack) -> None:
    sender = f"e2e-{uuid.uuid4().hex[:8]}"
    say(stack, sender, "第一次办社保卡怎么申领？")
    follow = text_of(say(stack, sender, "需要带什么材料"))
    assert "第一次办社保卡怎么申领" in follow


def test_human_words_at_the_end_of_a_question_hand_off_in_that_turn(stack: Stack) -> None:
    sender = f"e2e-{uuid.uuid4().hex[:8]}"
    text = text_of(say(stack, sender, "我的医保异地备案一直审核不通过，转人工"))
    assert "人工" in text and "依据：" not in text


def test_an_appeal_told_as_a_story_starts_the_intake(stack: Stack) -> None:
    sender = f"e2e-{uuid.uuid4().hex[:8]}"
    story = (
        "我们和平路八号院门口的窨井盖碎了一个多星期了 昨天晚上有个老人踩空摔了进去 物业说不归他们管"
    )
    text = text_of(say(stack, sender, story))
    assert "登记" in text and "依据：" not in text
