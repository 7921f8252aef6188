"""FAQ answers chosen by the knowledge package: answer, candidates, no entry, stale entries,
follow-ups about the entry just answered, and appeals that no entry answers.

The selector is the real one (e5 + lexical ranking) over the small test knowledge base; each
test fixes the answer / clarify / none decision with the plain-rule `DecisionModel` so that the
action's handling of that decision is what is checked (the decision itself is measured by
bench/knowledge.py and bench/nlu.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionClarify
from actions.faq import ActionAnswerFaq, ActionAnswerInAppeal, ActionTopicMenu, question_part
from knowledge.decision import DecisionModel
from knowledge.embed import Embedder
from knowledge.entries import KnowledgeBase
from knowledge.selector import Selector
from tests.actions.conftest import buttons, load_tracker, texts

DAY = date(2026, 11, 21)
ALWAYS_ANSWER = DecisionModel(rule_answer_top=-9.0, rule_answer_margin=-9.0)
ALWAYS_CLARIFY = DecisionModel(rule_answer_top=9.0, rule_none_top=-9.0)
ALWAYS_NONE = DecisionModel(rule_answer_top=9.0, rule_none_top=9.0)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """One embedder for the module (the index of the test base is built per selector)."""
    return Embedder()


def selector(knowledge: KnowledgeBase, embedder: Embedder, decision: DecisionModel) -> Selector:
    return Selector(knowledge, embedder=embedder, decision=decision)


def tracker(
    text: str,
    intent: str = "faq",
    ranking: list[tuple[str, float]] | None = None,
    **slots: Any,
) -> Tracker:
    """A tracker whose latest message is `text` with DIET's `ranking`."""
    ranking = ranking or [(intent, 0.9)]
    return Tracker.from_dict(
        {
            "sender_id": "s1",
            "slots": slots,
            "latest_message": {
                "text": text,
                "intent": {"name": intent, "confidence": ranking[0][1]},
                "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
                "entities": [],
            },
            "events": [],
        }
    )


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def answer(sel: Selector, t: Tracker) -> tuple[CollectingDispatcher, list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = await ActionAnswerFaq(sel, DAY).run(dispatcher, t, {})
    return dispatcher, events


async def test_sure_answer_gives_the_answer_its_source_and_remembers_the_entry(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    dispatcher, events = await answer(sel, tracker("换了城市上班 养老保险咋转过去"))
    [text] = texts(dispatcher)
    assert "国家社会保险公共服务平台" in text
    assert "依据：《城镇企业职工基本养老保险关系转移接续暂行办法》" in text
    assert buttons(dispatcher) == []
    assert slot_events(events) == {
        "last_faq_id": "si_test_transfer",
        "last_question": "养老保险跨省怎么转移？",
    }


async def test_unsure_offers_at_most_three_candidates_never_a_stale_entry(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_CLARIFY)
    dispatcher, events = await answer(sel, tracker("社保卡和养老保险的事"))
    assert not any("挂失" in t or "国家社会保险" in t for t in texts(dispatcher))
    payloads = [b["payload"] for b in buttons(dispatcher)]
    assert set(payloads[:-1]) == {"社保卡丢了怎么补办？", "养老保险跨省怎么转移？"}
    assert len(payloads) <= 4 and payloads[-1] == "/request_human"
    assert "灵活就业人员社保缴费基数是多少？" not in payloads
    assert slot_events(events)["last_faq_id"] is None


async def test_no_entry_fits_says_so_and_offers_human_message_and_12345(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_NONE)
    dispatcher, _ = await answer(sel, tracker("人才公寓补贴什么时候发"))
    [text] = texts(dispatcher)
    assert "没有现成的答复" in text and "12345" in text
    payloads = [b["payload"] for b in buttons(dispatcher)]
    assert payloads == ["/request_human", "/leave_message"]  # no unrelated candidates


async def test_entry_past_review_date_is_not_served(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    dispatcher, _ = await answer(sel, tracker("灵活就业人员社保缴费基数是多少"))
    assert not any("过期的答案" in t for t in texts(dispatcher))
    assert [b["payload"] for b in buttons(dispatcher)] == ["/request_human", "/leave_message"]


async def test_the_same_entry_is_served_before_its_review_date(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    dispatcher = CollectingDispatcher()
    t = tracker("灵活就业人员社保缴费基数是多少")
    await ActionAnswerFaq(sel, date(2020, 6, 1)).run(dispatcher, t, {})
    assert "过期的答案" in texts(dispatcher)[0]


async def test_follow_up_on_materials_is_answered_from_the_entry_just_answered(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    # Whatever the selector would make of the words alone, the follow-up reads the last entry.
    sel = selector(knowledge, embedder, ALWAYS_NONE)
    t = tracker(
        "需要带什么材料", last_faq_id="si_test_transfer", last_question="养老保险跨省怎么转移？"
    )
    dispatcher, events = await answer(sel, t)
    [text] = texts(dispatcher)
    assert "身份证、社保卡" in text and "养老保险跨省怎么转移" in text
    assert "国家社会保险公共服务平台" not in text  # only the part that was asked
    assert slot_events(events)["last_faq_id"] == "si_test_transfer"


async def test_follow_up_the_entry_does_not_cover_says_so_with_the_full_answer(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_NONE)
    t = tracker("要钱吗", last_faq_id="si_test_transfer", last_question="养老保险跨省怎么转移？")
    dispatcher, _ = await answer(sel, t)
    [text] = texts(dispatcher)
    assert "没有写明费用" in text and "国家社会保险公共服务平台" in text


async def test_a_follow_up_with_nothing_before_it_asks_which_service(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    # Even a selector sure of some entry must not answer "需要带什么材料" out of the blue.
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    dispatcher, events = await answer(sel, tracker("需要带什么材料"))
    [text] = texts(dispatcher)
    assert "哪一项业务" in text and "材料" in text
    assert "身份证" not in text and "挂失" not in text
    assert slot_events(events)["last_faq_id"] is None


async def test_a_long_story_no_entry_answers_starts_the_intake_with_it(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    story = (
        "我们小区三号楼门口的路灯坏了快一个月了 晚上漆黑一片 "
        "上周还有个老人在那里摔倒了 物业一直推给街道"
    )
    sel = selector(knowledge, embedder, ALWAYS_NONE)
    dispatcher, events = await answer(sel, tracker(story, ranking=[("faq", 0.6)]))
    slots = slot_events(events)
    assert slots["description"] == story
    assert {"event": "followup", "timestamp": None, "name": "work_order_form"} in events
    assert "登记" in texts(dispatcher)[0]
    assert not buttons(dispatcher)


async def test_a_short_question_no_entry_answers_does_not_start_the_intake(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_NONE)
    _, events = await answer(sel, tracker("人才公寓补贴什么时候发"))
    assert not any(e.get("event") == "followup" for e in events)
    assert "description" not in slot_events(events)


async def test_a_question_inside_an_appeal_gets_the_answer_then_the_offer_to_register(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    text = "我换了城市上班 原来的单位一直拖着不给我办手续 我想投诉他们 养老保险到底怎么转过来"
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    dispatcher, events = await answer(
        sel, tracker(text, ranking=[("faq", 0.55), ("complain", 0.4)])
    )
    said = texts(dispatcher)
    assert "国家社会保险公共服务平台" in said[0]
    assert "登记工单" in said[1]
    assert "/leave_message" in [b["payload"] for b in buttons(dispatcher)]
    assert not any(e.get("event") == "followup" for e in events)


async def test_an_appeal_that_asks_a_policy_question_gets_the_answer_first(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    text = "原单位一直拖着不给我转养老保险 我要投诉他们 养老保险跨省到底怎么转移？"
    dispatcher = CollectingDispatcher()
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    events = await ActionAnswerInAppeal(sel, DAY).run(
        dispatcher, tracker(text, intent="complain"), {}
    )
    assert "国家社会保险公共服务平台" in texts(dispatcher)[0]
    assert slot_events(events)["last_faq_id"] == "si_test_transfer"


async def test_an_appeal_without_a_question_gets_no_answer(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    text = "我要投诉原单位 拖了半年不给我办养老保险转移手续 人事天天推说领导不在"
    dispatcher = CollectingDispatcher()
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    events = await ActionAnswerInAppeal(sel, DAY).run(
        dispatcher, tracker(text, intent="complain"), {}
    )
    assert dispatcher.messages == [] and events == []


async def test_clarify_answers_when_diet_leans_to_a_question_and_the_selector_is_sure(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_ANSWER)
    dispatcher = CollectingDispatcher()
    t = tracker(
        "社保卡掉了咋整",
        intent="nlu_fallback",
        ranking=[("nlu_fallback", 0.5), ("faq", 0.45), ("complain", 0.4)],
    )
    events = await ActionClarify(sel, DAY).run(dispatcher, t, {})
    assert "挂失" in texts(dispatcher)[0]
    assert slot_events(events)["clarified"] is False


async def test_clarify_shows_entry_and_intent_candidates_then_a_human(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_CLARIFY)
    dispatcher = CollectingDispatcher()
    events = await ActionClarify(sel, DAY).run(dispatcher, load_tracker("nlu_fallback"), {})
    titles = [b["title"] for b in buttons(dispatcher)]
    assert len(titles) == 4 and titles[-1] == "都不是，转人工"
    assert set(titles[:2]) == {"社保卡丢了怎么补办？", "养老保险跨省怎么转移？"}
    assert titles[2] == "我要投诉"
    assert "灵活就业人员社保缴费基数是多少？" not in titles  # stale entries are not offered
    assert slot_events(events)["clarified"] is True


async def test_clarify_offers_no_unrelated_entries_when_none_fits(
    knowledge: KnowledgeBase, embedder: Embedder
) -> None:
    sel = selector(knowledge, embedder, ALWAYS_NONE)
    dispatcher = CollectingDispatcher()
    await ActionClarify(sel, DAY).run(dispatcher, load_tracker("nlu_fallback"), {})
    titles = [b["title"] for b in buttons(dispatcher)]
    assert titles == ["我要投诉", "都不是，转人工"]


async def test_topic_menu_lists_questions_of_the_topic(knowledge: KnowledgeBase) -> None:
    dispatcher = CollectingDispatcher()
    tracker_ = load_tracker("faq_confident", sender="s1")
    tracker_.latest_message["entities"] = [{"entity": "topic", "value": "test_kb"}]
    await ActionTopicMenu(knowledge).run(dispatcher, tracker_, {})
    assert "社会保险常见问题" in texts(dispatcher)[0]
    assert buttons(dispatcher)[0]["payload"] == "养老保险跨省怎么转移？"


def test_the_question_of_an_appeal_is_ranked_on_its_own_words() -> None:
    story = "公司三年没给我交社保 老板说试用期都不交 我现在想维权 社保不交应该找哪个部门"
    assert question_part(story) == "社保不交应该找哪个部门"
    assert question_part("楼下烧烤店天天闹到半夜 这合理吗") == "楼下烧烤店天天闹到半夜 这合理吗"
    assert question_part("我要投诉原单位 拖了半年不给我办养老保险转移手续") is None
