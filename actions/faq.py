"""FAQ answers chosen by the knowledge package (knowledge.selector), follow-ups, topic menus.

Rasa only says that the citizen asks something (intent `faq`); which entry answers, whether to
ask back with candidates or to say that no entry fits is `get_selector().decide(...)` on the
citizen's own text. `plan_reply` is that decision for one turn, written as a pure function so
that bench/nlu.py scores exactly what the citizen sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import (
    HUMAN_BUTTON,
    MESSAGE_BUTTON,
    NONE_OF_THESE_BUTTON,
    button,
    entity_value,
    latest_text,
)
from knowledge.entries import FaqEntry, KnowledgeBase, get_knowledge, topic_from_text
from knowledge.followup import answer_aspect, aspect
from knowledge.selector import Selector, get_selector, local_today

TOPIC_BUTTONS = [
    ("社保", "social_insurance"),
    ("医保", "medical_insurance"),
    ("公积金", "housing_fund"),
    ("企业开办", "business"),
    ("12345热线", "hotline"),
]
APPEAL_INTENTS = ("report_problem", "complain", "suggest")
# A message that no entry fits is taken as an appeal (the intake starts with it as the
# description) when DIET gives the appeal intents together at least APPEAL_MIN_SHARE, or when it
# is a long story (APPEAL_MIN_CHARS) that does not end as a question or DIET sees some appeal in.
APPEAL_MIN_CHARS = 40
APPEAL_MIN_SHARE = 0.5
APPEAL_SOME_SHARE = 0.1
_ENDS_AS_QUESTION = re.compile(r"(吗|么|呢|怎么办|怎么弄|如何|哪里|多少|什么|几天|多久|[?？])\W*$")
# Characters of a bare follow-up ("需要带什么材料", "在哪里办", "要钱吗"): a message with more than
# FOLLOWUP_MAX_CONTENT other characters names something of its own ("人才公寓补贴什么时候发").
_FOLLOWUP_CHARS = frozenset(
    "需要带什么啥材料资料证件手续准备哪些多久长时间几天个工作日候到账能可以在哪里儿去办理网上线手机"
    "吗呢啊吧呀钱收费用免交大概一般下来的了得我还是这个那么样怎就要有没些跑趟窗口地方部门申请"
    "。，？！?!、 "
)
FOLLOWUP_MAX_CONTENT = 2
# A question inside an appeal: after the answer, offer to register what happened.
MIXED_MIN_CHARS = 40
MIXED_MIN_SHARE = 0.2
FORM_NAME = "work_order_form"
NO_ENTRY_TEXT = (
    "抱歉，这个问题我这里没有现成的答复，不想给您不相关的信息。"
    "您可以转人工客服、留言登记工单，或拨打12345热线电话咨询。"
)
STALE_TEXT = (
    "这个问题的答复正在更新核实，为避免给您过时的信息，"
    "建议转人工客服或登记工单，由工作人员为您解答。"
)
OFFER_TEXT = "如果您还需要反映具体问题，可以登记工单，我们会转交承办部门处理。"
ASPECT_NAMES = {
    "materials": "需要的材料",
    "time": "办理时间",
    "where": "办理地点",
    "online": "网上办理",
    "cost": "费用",
}
NO_ENTRY_BUTTONS = [HUMAN_BUTTON, button("留言登记工单", "/leave_message")]

Kind = Literal[
    "answer", "aspect", "aspect_unknown", "need_topic", "clarify", "none", "stale", "intake"
]
# Characters of a bare follow-up ("需要带什么材料", "在哪里办", "要钱吗"): a message with more than
# FOLLOWUP_MAX_CONTENT other characters names something of its own ("人才公寓补贴什么时候发").
_FOLLOWUP_CHARS = frozenset(
    "需要带什么啥材料资料证件手续准备哪些多久长时间几天个工作日候到账能可以在哪里儿去办理网上线手机"
    "吗呢啊吧呀钱收费用免交大概一般下来的了得我还是这个那么样怎就要有没些跑趟窗口地方部门申请"
    "。，？！?!、 "
)
FOLLOWUP_MAX_CONTENT = 2
# A question inside an appeal: what makes a message ask something (rhetorical ones included;
# the selector still has to be sure of an entry before anything is answered).
_ASKS = re.compile(
    r"怎么办|怎么|如何|哪里|哪个部门|找谁|能不能|可不可以|是否|多少|什么条件|有什么规定|"
    r"吗[？?。!！\s]*$|[?？]"
)


@dataclass
class Plan:
    """What the bot does with one question turn."""

    kind: Kind
    entry: FaqEntry | None = None
    candidates: list[FaqEntry] = field(default_factory=list)
    aspect: str | None = None
    aspect_text: str | None = None
    offer_intake: bool = False  # answered, and the message also told of a problem to register

    @property
    def answered_id(self) -> str | None:
        """The entry whose text the citizen gets, if any."""
        return self.entry.id if self.kind in ("answer", "aspect") and self.entry else None


def appeal_share(intent_ranking: list[dict[str, Any]]) -> float:
    """DIET's combined confidence in the appeal intents."""
    return sum(
        float(item.get("confidence") or 0.0)
        for item in intent_ranking or []
        if item.get("name") in APPEAL_INTENTS
    )


def looks_like_appeal(text: str, intent_ranking: list[dict[str, Any]]) -> bool:
    """DIET leans towards an appeal, or a long story that is not asked as a question."""
    share = appeal_share(intent_ranking)
    if share >= APPEAL_MIN_SHARE:
        return True
    text = text.strip()
    if len(text) < APPEAL_MIN_CHARS:
        return False
    return share >= APPEAL_SOME_SHARE or not _ENDS_AS_QUESTION.search(text)


def is_bare_follow_up(text: str) -> bool:
    """True when the message only asks about materials / time / place / online / cost, without
    naming anything of its own (so it can only be about the entry just discussed)."""
    return sum(ch not in _FOLLOWUP_CHARS for ch in text) <= FOLLOWUP_MAX_CONTENT


def plan_reply(
    text: str,
    *,
    selector: Selector,
    day: date,
    last_faq_id: str | None = None,
    last_question: str | None = None,
    intent_ranking: list[dict[str, Any]] | None = None,
) -> Plan:
    """Decide one question turn: a follow-up about the last entry, the answer, candidates, the
    plain "no entry fits", or the intake of an appeal that no entry answers."""
    ranking = intent_ranking or []
    last = selector.kb.get(last_faq_id) if last_faq_id else None
    asked = aspect(text) if is_bare_follow_up(text) else None
    if asked and last is None:
        return Plan("need_topic", aspect=asked)  # "需要带什么材料" with nothing before it
    if last is not None and asked:
        if last.is_expired(day):
            return Plan("stale", last)
        part = answer_aspect(last, asked)
        if part:
            return Plan("aspect", last, aspect=asked, aspect_text=part)
        return Plan("aspect_unknown", last, aspect=asked)
    decision = selector.decide(text, previous=last_question, today=day)
    if decision.kind == "answer" and decision.entry is not None:
        mixed = len(text.strip()) >= MIXED_MIN_CHARS and appeal_share(ranking) >= MIXED_MIN_SHARE
        return Plan("answer", decision.entry, offer_intake=mixed)
    if decision.kind == "clarify" and decision.candidates:
        return Plan("clarify", candidates=[c.entry for c in decision.candidates][:3])
    if decision.expired is not None:
        return Plan("stale", decision.expired)
    if looks_like_appeal(text, ranking):
        return Plan("intake")
    return Plan("none")


_CLAUSE_END = re.compile(r"[，。！？!?,;；\s]+")
MIN_QUESTION_CHARS = 8


def question_part(text: str) -> str | None:
    """The clause of a story that asks something (with the clause before it when it is short),
    or None: "… 我现在想维权 社保不交应该找哪个部门" → "社保不交应该找哪个部门"."""
    clauses = [c for c in _CLAUSE_END.split(text) if c]
    for i in range(len(clauses) - 1, -1, -1):
        if _ASKS.search(clauses[i] + ("？" if text.rstrip().endswith(("?", "？")) else "")):
            part = clauses[i]
            if len(part) < MIN_QUESTION_CHARS and i > 0:
                part = clauses[i - 1] + " " + part
            return part
    return None


def answer_in_appeal(text: str, *, selector: Selector, day: date) -> FaqEntry | None:
    """The entry that answers the question asked inside an appeal, when the selector is sure of
    it for that question's own words (the story around it would only blur the ranking)."""
    if not text or text.startswith("/"):
        return None
    question = question_part(text)
    if question is None:
        return None
    decision = selector.decide(question, today=day)
    return decision.entry if decision.kind == "answer" else None


def answer_text(entry: FaqEntry) -> str:
    """The answer plus its source in one short line."""
    text = entry.answer
    if entry.source:
        text += f"\n依据：{entry.source}"
    return text


def remembered(entry: FaqEntry | None) -> list[dict[str, Any]]:
    """Slots that let the next turn follow up on `entry` (cleared when None)."""
    return [
        SlotSet("last_faq_id", entry.id if entry else None),
        SlotSet("last_question", entry.question if entry else None),
    ]


async def start_intake(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
) -> list[dict[str, Any]]:
    """Start the work-order form with the citizen's message as the description, as
    action_start_work_order does for an appeal intent, then run the form."""
    from actions.work_order_form import ActionStartWorkOrder  # the form's own start

    events = await ActionStartWorkOrder().run(dispatcher, tracker, domain)
    return [*events, *remembered(None), FollowupAction(FORM_NAME)]


async def say_plan(
    plan: Plan,
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    domain: dict[str, Any],
    *,
    clarify_text: str = "您想问的是下面哪个问题？",
) -> list[dict[str, Any]]:
    """Utter a plan and return the events that remember what was answered."""
    if plan.kind == "answer" and plan.entry is not None:
        dispatcher.utter_message(text=answer_text(plan.entry))
        if plan.offer_intake:
            dispatcher.utter_message(text=OFFER_TEXT, buttons=[MESSAGE_BUTTON, HUMAN_BUTTON])
        return remembered(plan.entry)
    if plan.kind == "aspect" and plan.entry is not None:
        source = f"\n依据：{plan.entry.source}" if plan.entry.source else ""
        dispatcher.utter_message(
            text=f"关于“{plan.entry.question}”，{ASPECT_NAMES[plan.aspect or '']}：\n"
            f"{plan.aspect_text}{source}"
        )
        return remembered(plan.entry)
    if plan.kind == "aspect_unknown" and plan.entry is not None:
        dispatcher.utter_message(
            text=f"关于“{plan.entry.question}”，现有答复没有写明{ASPECT_NAMES[plan.aspect or '']}。"
            "完整答复如下，具体可转人工或拨打12345热线咨询：\n" + answer_text(plan.entry),
            buttons=[HUMAN_BUTTON],
        )
        return remembered(plan.entry)
    if plan.kind == "need_topic":
        dispatcher.utter_message(
            text=f"请问您想了解哪一项业务的{ASPECT_NAMES[plan.aspect or '']}？"
            "请把业务名称一起告诉我，比如“社保卡补办需要什么材料”。"
        )
        return remembered(None)
    if plan.kind == "stale":
        dispatcher.utter_message(text=STALE_TEXT, buttons=[HUMAN_BUTTON, MESSAGE_BUTTON])
        return remembered(None)
    if plan.kind == "clarify":
        dispatcher.utter_message(
            text=clarify_text,
            buttons=[button(e.question, e.question) for e in plan.candidates]
            + [NONE_OF_THESE_BUTTON],
        )
        return remembered(None)
    if plan.kind == "intake":
        return await start_intake(dispatcher, tracker, domain)
    dispatcher.utter_message(text=NO_ENTRY_TEXT, buttons=NO_ENTRY_BUTTONS)
    return remembered(None)


def plan_for(tracker: Tracker, selector: Selector, day: date) -> Plan:
    """plan_reply on the tracker's latest message and remembered slots."""
    return plan_reply(
        latest_text(tracker),
        selector=selector,
        day=day,
        last_faq_id=tracker.get_slot("last_faq_id"),
        last_question=tracker.get_slot("last_question"),
        intent_ranking=(tracker.latest_message or {}).get("intent_ranking") or [],
    )


class ActionAnswerFaq(Action):
    """Answer from the knowledge base, ask back with candidates, or say no entry fits."""

    def __init__(self, selector: Selector | None = None, day: date | None = None) -> None:
        self._selector = selector
        self._day = day

    def name(self) -> str:
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        selector = self._selector or get_selector()
        plan = plan_for(tracker, selector, self._day or local_today())
        return await say_plan(plan, dispatcher, tracker, domain)


class ActionAnswerInAppeal(Action):
    """Before the intake of an appeal: answer the policy question it also asks, if any."""

    def __init__(self, selector: Selector | None = None, day: date | None = None) -> None:
        self._selector = selector
        self._day = day

    def name(self) -> str:
        return "action_answer_in_appeal"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        selector = self._selector or get_selector()
        entry = answer_in_appeal(
            latest_text(tracker), selector=selector, day=self._day or local_today()
        )
        if entry is None:
            return []
        dispatcher.utter_message(text=f"先回答您问到的：\n{answer_text(entry)}")
        return remembered(entry)


class ActionTopicMenu(Action):
    """Common questions of one topic as buttons (welcome quick replies lead here)."""

    def __init__(self, knowledge: KnowledgeBase | None = None) -> None:
        self._knowledge = knowledge

    def name(self) -> str:
        return "action_topic_menu"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        kb = self._knowledge or get_knowledge()
        topic = entity_value(tracker, "topic") or topic_from_text(latest_text(tracker))
        entries = kb.menu(topic) if topic else []
        if not entries:
            dispatcher.utter_message(
                text="请直接描述您的问题，或选择一个主题：",
                buttons=[
                    button(title, f'/browse_topic{{"topic":"{key}"}}')
                    for title, key in TOPIC_BUTTONS
                    if kb.by_topic.get(key)
                ],
            )
            return []
        name = kb.topic_name(topic) or ""
        dispatcher.utter_message(
            text=f"{name}常见问题如下，也可以直接输入您的问题：",
            buttons=[button(e.question, e.question) for e in entries],
        )
        return []
