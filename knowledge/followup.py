"""Follow-ups about the entry just discussed, and elliptical questions read with the previous one.

`aspect(text)` names what a follow-up asks about the previous answer — `materials`
(需要带什么材料), `time` (多久能到账 / 办多久), `where` (去哪办), `online` (网上能办吗),
`cost` (要钱吗) — or None. `answer_aspect(entry, aspect)` takes the part of the entry's answer
about it (its 需要材料 line, the sentences with 工作日 / 到账 …), or None when the answer does
not say. `elliptical_query(text, previous, entry)` turns "那买房呢" after a question about
withdrawing 公积金 for rent into "公积金 提取 那买房呢", ranked within the 公积金 topic.
"""

from __future__ import annotations

import re

from knowledge.entries import TOPIC_KEYWORDS, FaqEntry, topic_from_text

Aspect = str  # "materials" | "time" | "where" | "online" | "cost"

# What a short follow-up asks (checked in this order; the message must be short, see aspect()).
_ASPECT_QUESTIONS: tuple[tuple[Aspect, re.Pattern[str]], ...] = (
    ("online", re.compile(r"网上|线上|手机上?|app|小程序|公众号|网办|掌上|不用跑|在家")),
    ("cost", re.compile(r"要钱|收费|费用|花钱|多少钱|免费|工本费|交钱|给钱")),
    (
        "materials",
        re.compile(r"材料|资料|证件|带什么|带啥|拿什么|拿啥|准备什么|准备啥|需要啥|要带|手续"),
    ),
    (
        "time",
        re.compile(r"多久|多长时间|几天|多少天|啥时候|什么时候|到账|时限|多快|几个工作日|要等"),
    ),
    ("where", re.compile(r"哪里|哪儿|哪办|在哪|去哪|什么地方|啥地方|地址|窗口|网点|哪个部门")),
)

# Sentences of an answer that speak to each aspect.
_ASPECT_ANSWERS: dict[Aspect, re.Pattern[str]] = {
    "materials": re.compile(r"材料|证件|身份证|资料|证明|带上|携带"),
    "time": re.compile(
        r"工作日|个月|日内|天内|到账|时限|时长|办理时间|当日|当天|即时|实时|立即|次月|期限|之前|以内"
    ),
    "where": re.compile(
        r"窗口|服务中心|大厅|网点|经办机构|所在地|政务服务|柜台|营业厅|办事处|医院"
    ),
    "online": re.compile(
        r"网上|线上|app|APP|小程序|公众号|政务服务网|一网通办|平台|掌上|网站|电子"
    ),
    "cost": re.compile(r"免费|收费|费用|不收|工本费|缴纳|元"),
}
_LABELLED = re.compile(r"^\s*([^：:，,。]{2,8})[：:]")
_MATERIAL_LABELS = ("需要材料", "常见材料", "所需材料", "申请材料", "材料")
_SENTENCE_END = re.compile(r"(?<=[。；;！!？?])")

_MAX_FOLLOWUP_CHARS = 20  # longer messages are questions of their own
_ELLIPTICAL = re.compile(r"^(那|那么|那要是|要是|如果是|如果|假如|换成|改成|还有)|呢[？?。!！\s]*$")


def aspect(text: str) -> Aspect | None:
    """What a short follow-up asks about the entry just discussed, or None."""
    text = (text or "").strip()
    if not text or len(text) > _MAX_FOLLOWUP_CHARS or topic_from_text(text):
        return None
    for name, pattern in _ASPECT_QUESTIONS:
        if pattern.search(text.lower()):
            return name
    return None


def _sentences(answer: str) -> list[str]:
    out: list[str] = []
    for line in answer.splitlines():
        line = line.strip()
        if not line:
            continue
        if _LABELLED.match(line):
            out.append(line)  # a labelled line (办理步骤：1. …；2. …) stays whole
        else:
            out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def answer_aspect(entry: FaqEntry, aspect_name: Aspect) -> str | None:
    """The part of `entry`'s answer about `aspect_name`, or None when the answer does not say."""
    sentences = _sentences(entry.answer)
    if aspect_name == "materials":
        labelled = [
            s for s in sentences if (m := _LABELLED.match(s)) and m.group(1) in _MATERIAL_LABELS
        ]
        if labelled:
            return "\n".join(labelled)
    pattern = _ASPECT_ANSWERS.get(aspect_name)
    if pattern is None:
        return None
    hits = [s for s in sentences if pattern.search(s)]
    if aspect_name == "cost":
        hits = [s for s in hits if re.search(r"免费|收费|费用|不收|工本费", s)]
    return "\n".join(hits) if hits else None


def is_elliptical(text: str) -> bool:
    """True for a short follow-up that leans on the previous question ("那买房呢")."""
    text = text.strip()
    return bool(text) and len(text) <= _MAX_FOLLOWUP_CHARS and bool(_ELLIPTICAL.search(text))


def elliptical_query(
    text: str, previous: str, entry: FaqEntry | None
) -> tuple[str, str | None] | None:
    """The text to rank for an elliptical follow-up and the topic key to keep it in, or None
    when `text` stands on its own.

    The previous question's topic word and the subtopic of the entry it matched are put before
    the follow-up, which is then ranked within that topic only; a follow-up naming a topic of
    its own ("那医保呢") keeps only the subtopic and is ranked in its own topic.
    """
    if not is_elliptical(text) or aspect(text):
        return None
    context: list[str] = []
    topic = topic_from_text(text)
    if topic is None:
        topic = topic_from_text(previous) or (entry.topic_key if entry else None)
        if topic:
            context.append(TOPIC_KEYWORDS[topic][0] if topic in TOPIC_KEYWORDS else topic)
    if entry is not None and entry.subtopic:
        context.append(entry.subtopic)
    if not context:
        return None
    return " ".join([*context, text]), topic
