"""Follow-ups about the entry just discussed: which aspect is asked, and the part that answers."""

from __future__ import annotations

import pytest

from knowledge.entries import FAQ_DIR, KnowledgeBase
from knowledge.followup import answer_aspect, aspect, elliptical_query, is_elliptical

KB = KnowledgeBase.load(FAQ_DIR)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("需要带什么材料", "materials"),
        ("要准备啥资料啊", "materials"),
        ("多久能到账", "time"),
        ("办下来要几天", "time"),
        ("去哪办", "where"),
        ("在哪个窗口办", "where"),
        ("网上能办吗", "online"),
        ("手机上可以弄不", "online"),
        ("要钱吗", "cost"),
        ("收费吗", "cost"),
        ("好的谢谢", None),
        ("我想问问公积金租房提取需要什么材料", None),  # names a topic: a question of its own
    ],
)
def test_aspect_of_a_follow_up(text: str, expected: str | None) -> None:
    assert aspect(text) == expected


def test_materials_come_from_the_entrys_materials_line() -> None:
    entry = KB.get("hf_withdraw_rent")
    part = answer_aspect(entry, "materials")
    assert part is not None and part.startswith("需要材料")
    assert "身份证" in part
    assert "办理步骤" not in part


def test_online_part_mentions_the_online_channel() -> None:
    part = answer_aspect(KB.get("hf_withdraw_rent"), "online")
    assert part is not None and ("APP" in part or "小程序" in part)


def test_an_aspect_the_answer_does_not_cover_gives_none() -> None:
    # the rent-withdrawal answer says nothing about fees
    assert answer_aspect(KB.get("hf_withdraw_rent"), "cost") is None


def test_elliptical_question_gets_the_previous_topic() -> None:
    entry = KB.get("hf_withdraw_rent")
    assert is_elliptical("那买房呢")
    follow = elliptical_query("那买房呢", "公积金怎么提取出来付房租", entry)
    assert follow is not None
    query, topic = follow
    assert "公积金" in query and "买房" in query
    assert topic == "housing_fund"
    assert elliptical_query("公积金贷款利率多少", "公积金怎么提取出来付房租", entry) is None


def test_time_part_gives_the_deadline() -> None:
    part = answer_aspect(KB.get("hf_withdraw_process_time"), "time")
    assert part is not None and "3日内" in part
    assert "需要材料" not in part


def test_cost_part_names_the_fee_rule() -> None:
    part = answer_aspect(KB.get("si_card_replace"), "cost")
    assert part is not None and "工本费" in part
