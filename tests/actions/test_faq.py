"""FAQ answers, candidate buttons and stale entries, driven by saved trackers."""

from __future__ import annotations

from datetime import date

from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionClarify
from actions.faq import ActionAnswerFaq, ActionTopicMenu
from actions.knowledge import KnowledgeBase
from tests.actions.conftest import buttons, load_tracker, texts

DAY = date(2026, 11, 21)


async def run_faq(kb: KnowledgeBase, tracker_name: str) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    await ActionAnswerFaq(kb, DAY).run(dispatcher, load_tracker(tracker_name, sender="s1"), {})
    return dispatcher


async def test_confident_match_gives_the_answer_and_its_source(knowledge: KnowledgeBase) -> None:
    dispatcher = await run_faq(knowledge, "faq_confident")
    [text] = texts(dispatcher)
    assert "国家社会保险公共服务平台" in text
    assert "依据：《城镇企业职工基本养老保险关系转移接续暂行办法》" in text
    assert buttons(dispatcher) == []


async def test_close_candidates_are_offered_as_buttons_not_answered(
    knowledge: KnowledgeBase,
) -> None:
    dispatcher = await run_faq(knowledge, "faq_ambiguous")
    assert not any("挂失" in t or "国家社会保险" in t for t in texts(dispatcher))
    payloads = [b["payload"] for b in buttons(dispatcher)]
    # canonical questions (re-enter NLU with a clear match); the stale entry is never offered
    assert payloads == ["社保卡丢了怎么补办？", "养老保险跨省怎么转移？", "/request_human"]
    assert buttons(dispatcher)[-1]["title"] == "都不是，转人工"


async def test_entry_past_review_date_is_not_served(knowledge: KnowledgeBase) -> None:
    dispatcher = await run_faq(knowledge, "faq_stale")
    assert not any("过期的答案" in t for t in texts(dispatcher))
    assert [b["payload"] for b in buttons(dispatcher)] == ["/request_human", "/leave_message"]


async def test_the_same_entry_is_served_before_its_review_date(knowledge: KnowledgeBase) -> None:
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("faq_stale", sender="s1")
    await ActionAnswerFaq(knowledge, date(2020, 6, 1)).run(dispatcher, tracker, {})
    assert "过期的答案" in texts(dispatcher)[0]


async def test_clarify_shows_faq_and_intent_candidates_then_a_human(
    knowledge: KnowledgeBase,
) -> None:
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("nlu_fallback", sender="s1")
    await ActionClarify(knowledge).run(dispatcher, tracker, {})
    titles = [b["title"] for b in buttons(dispatcher)]
    assert titles[:3] == ["社保卡丢了怎么补办？", "养老保险跨省怎么转移？", "我要投诉"]
    assert titles[-1] == "都不是，转人工"
    assert "灵活就业人员社保缴费基数是多少？" not in titles  # stale entries are not offered


async def test_topic_menu_lists_questions_of_the_topic(knowledge: KnowledgeBase) -> None:
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("faq_confident", sender="s1")
    tracker.latest_message["entities"] = [{"entity": "topic", "value": "test_kb"}]
    await ActionTopicMenu(knowledge).run(dispatcher, tracker, {})
    assert "社会保险常见问题" in texts(dispatcher)[0]
    assert buttons(dispatcher)[0]["payload"] == "养老保险跨省怎么转移？"
