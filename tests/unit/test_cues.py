"""Cue rules that override the classifier (nlu_components/cues.py, applied last in Rasa's
pipeline by nlu_components/cue_overrides.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nlu_components.cues import cue_intent

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "text",
    [
        "我的医保异地备案一直审核不通过，转人工",
        "公积金中心电话打不通 给我找人工客服",
        "能不能让真人来回答",
        "轉人工",
        "你们机器人不行 找人工",
    ],
)
def test_a_human_anywhere_in_the_message_hands_off(text: str) -> None:
    assert cue_intent(text) == "request_human"


@pytest.mark.parametrize(
    "text", ["人工智能专业毕业能落户吗", "不用转人工了 谢谢", "装修人工费怎么算"]
)
def test_other_uses_of_the_word_are_not_a_request(text: str) -> None:
    assert cue_intent(text) != "request_human"


@pytest.mark.parametrize("text", ["留言", "登记工单。", "我要留言！", " 留言登记 "])
def test_typed_leave_message_words_leave_a_message(text: str) -> None:
    assert cue_intent(text) == "leave_message"


def test_a_question_about_the_message_board_is_not_leaving_a_message() -> None:
    assert cue_intent("留言板在哪里看回复") is None


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("投诉楼下饭店油烟直排 熏得家里窗户全是油", "complain"),
        ("我要举报有人在小区绿地上私搭乱建 占了消防通道", "complain"),
        ("反映一下 我们村的自来水三天两头停 老人挑水挑不动", "report_problem"),
        ("建议在实验小学门口加个红绿灯 孩子过马路太危险", "suggest"),
    ],
)
def test_an_appeal_word_followed_by_what_happened_is_an_appeal(text: str, intent: str) -> None:
    assert cue_intent(text) == intent


@pytest.mark.parametrize(
    "text",
    [
        "公司不给交公积金 去哪投诉",
        "举报领导违规 不想暴露身份 能匿名不",
        "投诉一般几个工作日内会有回复",
        "反映问题的时候要说清楚哪些内容",
        "我要投诉",  # says nothing of what happened: DIET and the form handle it
        "/complain",
    ],
)
def test_questions_about_complaining_and_bare_words_are_left_to_the_classifier(text: str) -> None:
    assert cue_intent(text) is None


def test_no_question_example_of_the_training_data_is_taken_for_an_appeal() -> None:
    """The rules override DIET with confidence 1.0, so they must not fire on a question."""
    doc = yaml.safe_load((ROOT / "data" / "nlu" / "questions.yml").read_text(encoding="utf-8"))
    lines = [
        line.strip()[2:]
        for block in doc["nlu"]
        for line in block["examples"].splitlines()
        if line.strip().startswith("- ")
    ]
    assert len(lines) > 1000
    fired = [t for t in lines if cue_intent(t) not in (None, "request_human")]
    assert fired == []
