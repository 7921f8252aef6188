"""Text normalisation shared by indexing and queries: traditional → simplified (OpenCC t2s),
NFKC (full-width letters and digits), lower case, collapsed whitespace; and the content
characters of a question (what is left once the question's framing words are removed)."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from typing import Any

_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Framing words of a citizen's question: they say *that* something is asked, not *what*.
_FRAMING = re.compile(
    "|".join(
        [
            "请问",
            "你好",
            "您好",
            "麻烦",
            "问一下",
            "咨询一下",
            "咨询",
            "想问",
            "我想",
            "我要",
            "怎么办",
            "怎么弄",
            "怎么样",
            "怎么",
            "咋办",
            "咋整",
            "咋",
            "如何",
            "什么",
            "啥",
            "哪里",
            "哪儿",
            "哪个",
            "是不是",
            "能不能",
            "可不可以",
            "可以",
            "需要",
            "要",
            "吗",
            "呢",
            "吧",
            "啊",
            "呀",
            "嘛",
            "了",
            "的",
            "地",
            "得",
            "我们",
            "我",
            "你们",
            "你",
            "他",
            "她",
            "有没有",
            "有",
            "没有",
            "是",
            "在",
            "就",
            "都",
            "还",
            "也",
            "去",
            "办理",
            "一下",
            "这个",
            "那个",
            "现在",
            "已经",
            "谢谢",
            "一个",
            "多少",
            "多久",
            "几",
        ]
    )
)


@lru_cache(maxsize=1)
def _t2s() -> Any:  # opencc ships no type stubs
    """OpenCC's traditional → simplified converter, or None where opencc is not installed (the
    Rasa virtualenv: the gateway has already converted the text before Rasa sees it)."""
    try:
        import opencc
    except ImportError:
        logging.getLogger(__name__).warning("opencc not installed: traditional text kept as is")
        return None
    return opencc.OpenCC("t2s")


def normalize(text: str) -> str:
    """Simplified, NFKC, lower-case text with single spaces."""
    text = unicodedata.normalize("NFKC", text or "")
    converter = _t2s()
    if converter is not None:
        text = converter.convert(text)
    return _SPACE.sub(" ", text).strip().lower()


def content_chars(text: str) -> str:
    """The CJK characters of a normalised question once its framing words are removed."""
    return "".join(_CJK.findall(_FRAMING.sub(" ", text)))


def bigrams(text: str) -> set[str]:
    """Character bigrams of `text` (single characters when it is one character long)."""
    if len(text) < 2:
        return {text} if text else set()
    return {text[i : i + 2] for i in range(len(text) - 1)}


# Words that tie a question to one topic of the knowledge base (stricter than the topic-menu
# keywords: a question naming 公积金 is not about 社保, whatever else it shares with one).
TOPIC_MARKERS: dict[str, re.Pattern[str]] = {
    "housing_fund": re.compile("公积金|公基金"),
    "medical_insurance": re.compile("医保|医疗保险|医保卡|新农合"),
    "social_insurance": re.compile("社保|养老保险|养老金|失业金|失业保险|工伤|生育保险|生育津贴"),
    "business": re.compile("营业执照|执照|公司|个体户|个体工商户|企业|工商|发票|报税|纳税"),
    "hotline": re.compile("12345|热线|工单"),
}


def topics_named(text: str) -> frozenset[str]:
    """The topic keys a normalised text names explicitly."""
    return frozenset(key for key, pattern in TOPIC_MARKERS.items() if pattern.search(text))


# Words of a time-bound measure (an epidemic-era relief, a subsidy of some year): an entry that
# never mentions them states the standing rule, not the measure asked about.
_MEASURE = re.compile("疫情|新冠|阶段性|临时性|缓缴|减免|补贴|20[0-3][0-9]年")


def measure_words(text: str) -> frozenset[str]:
    """The time-bound-measure words a normalised text contains."""
    return frozenset(_MEASURE.findall(text))
