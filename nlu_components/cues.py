"""Cue rules that decide an intent from the words of a message, whatever the classifier says.

Pure Python (no Rasa import) so the rules can be tested and benchmarked anywhere; the Rasa
component `nlu_components.cue_overrides.CueOverrides` applies them after DIET and the
FallbackClassifier.

- A request for a human ("转人工", "人工客服", "找人工", "真人" …) anywhere in a message hands off,
  whatever else the message says (issue 10: "我的医保异地备案一直审核不通过，转人工" → a human).
- A message that is only "留言" / "登记工单" (and the like) is the wish to leave a message.
- A message that opens with an appeal word (投诉 / 举报 / 反映 / 求助 / 建议 …) followed by what
  happened is an appeal, unless it asks how or where to do that ("去哪投诉", "怎么举报").
"""

from __future__ import annotations

import re

REQUEST_HUMAN = "request_human"
LEAVE_MESSAGE = "leave_message"
COMPLAIN = "complain"
REPORT_PROBLEM = "report_problem"
SUGGEST = "suggest"

# Hand-off words; "人工" alone is too broad ("人工智能", "人工费"), so only these phrases.
_HUMAN = re.compile(r"转人工|轉人工|人工客服|人工服务|人工坐席|找人工|要人工|接人工|真人|转接人工")
# Negated or quoted uses that are not a request ("不用转人工", "不要人工客服").
_HUMAN_NEGATED = re.compile(r"(不用|不要|别|无需|不需要)(转|找|接)?(人工|真人)")
_PUNCT = re.compile(r"[\s，。,.!！?？~～、:：;；…\"'“”‘’()（）【】\[\]]+")
LEAVE_WORDS = frozenset(
    "留言 我要留言 我想留言 留个言 留言吧 留言登记 留言登记工单 登记工单 我要登记工单 登记 "
    "我要登记 帮我登记 登记一下 留言登记吧 那就留言 那我留言 先留言 我先留言 留言给工作人员 "
    "我要留言登记 登记个工单 提交工单 我要提交工单".split()
)
# An appeal word at the start (after a greeting), then what happened.
_OPENER = re.compile(r"^(你好|您好|喂|哎|唉|那个|就是|请问|麻烦|领导|同志|工作人员)+")
_APPEAL_LEAD = re.compile(
    r"^(我要|我想|想|要)?(实名)?(投诉|举报|反映|反应|求助|建议|报修)(一下|下|个事|个情况|个问题)?"
)
_KIND_BY_WORD = {
    "投诉": COMPLAIN,
    "举报": COMPLAIN,
    "反映": REPORT_PROBLEM,
    "反应": REPORT_PROBLEM,
    "求助": REPORT_PROBLEM,
    "报修": REPORT_PROBLEM,
    "建议": SUGGEST,
}
# Asking how/where to complain is a question, not an appeal: any of these anywhere in the
# message leaves the decision to the classifier ("举报领导违规 不想暴露身份 能匿名不").
_HOW_TO = re.compile(
    r"怎么|怎样|如何|哪里|哪儿|去哪|在哪|哪些|什么|啥|部门|吗|么|呢|[?？]|电话|流程|步骤|"
    r"多久|几个工作日|几天|能不能|可不可以|能.{0,6}不$|需要|要准备|会不会|是否"
)
MIN_APPEAL_BODY = 10  # characters after the lead word: enough to say what happened


def squash(text: str) -> str:
    """The text without spaces and punctuation."""
    return _PUNCT.sub("", text or "")


def wants_human(text: str) -> bool:
    """True if the message asks for a human anywhere in it."""
    flat = squash(text)
    return bool(_HUMAN.search(flat)) and not _HUMAN_NEGATED.search(flat)


def wants_to_leave_message(text: str) -> bool:
    """True if the message is only the wish to leave a message / register a work order."""
    return squash(text) in LEAVE_WORDS


def appeal_by_lead_word(text: str) -> str | None:
    """The appeal intent when the message opens with an appeal word and goes on to say what
    happened (not how to complain); None otherwise."""
    flat = _OPENER.sub("", squash(text))
    match = _APPEAL_LEAD.match(flat)
    if not match:
        return None
    body = flat[match.end() :]
    if len(body) < MIN_APPEAL_BODY or body.startswith("的") or _HOW_TO.search(flat):
        return None
    return _KIND_BY_WORD[match.group(3)]


def cue_intent(text: str) -> str | None:
    """The intent the cue rules impose on a message, or None to keep the classifier's."""
    if not text or text.startswith("/"):  # button payloads carry their own intent
        return None
    if wants_human(text):
        return REQUEST_HUMAN
    if wants_to_leave_message(text):
        return LEAVE_MESSAGE
    return appeal_by_lead_word(text)
