"""Pick up the place, the citizen's name and mobile from a free-text appeal.

`extract_fields(text)` returns `IntakeFields(location, name, phone)`, each None when the text
does not give it. The work-order form pre-fills its slots with them and shows them in the
confirmation summary for the citizen to correct, so a wrong pick costs one tap, a missed one
costs the question the form would have asked anyway. The rules therefore lean to precision.

- phone: the first mainland mobile in the text (spaces, dashes, +86, full-width digits and
  digits read out as 一八九… are accepted), validated by `store.crypto.normalize_mobile`.
- name: only where the citizen introduces themself: 我叫X / 我是X / 本人X / 我姓X / 联系人X /
  反映人：X / "X女士反映：" / a titled name next to the phone ("…，张先生，138…"). Parties named in
  the story (老板姓吴, 王医生) are left alone.
- location: the most specific place phrase. A place is a run of components, each a short name
  followed by a place word (区/县/镇/街道/村/社区/路/街/巷/小区/花园/苑/大厦/医院/市场/站/厂 …)
  or a number (3栋, 52号, 2单元), optionally ending in a landmark word (交叉口, 门口, 旁边 …).
  Names stop at punctuation, spaces and function words (住在, 我们, 一家 …). Among the places
  found, the first of the most specific tier wins (an estate or a road over an institution,
  an institution over a bare district).

Pure Python, no model: a few microseconds per message. Chinese address parsers on PyPI were
measured (docs/classify.md) and do not fit: they resolve province / city / district names of an
address, while appeals name a street, an estate or a landmark inside a long story.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from store.crypto import normalize_mobile


@dataclass(frozen=True)
class IntakeFields:
    """What an appeal says about where, who and how to call back (None when absent)."""

    location: str | None = None
    name: str | None = None
    phone: str | None = None


@lru_cache(maxsize=1)
def _converter() -> Any:  # opencc ships no type stubs
    import opencc

    return opencc.OpenCC("t2s")


def _prepare(text: str) -> str:
    """Simplified characters, half-width digits and punctuation; spaces kept (they separate
    clauses in voice-to-text)."""
    text = unicodedata.normalize("NFKC", text or "")
    return _converter().convert(text)


# ------------------------------------------------------------------------------------ phone

_CN_DIGITS = str.maketrans("零〇幺一二三四五六七八九", "001123456789")
_CN_DIGIT_RUN = re.compile(r"[零〇幺一二三四五六七八九]{11,}")
_MOBILE_CANDIDATE = re.compile(r"(?<![\d])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?![\d])")


def extract_phone(text: str) -> str | None:
    """The first valid mainland mobile in the text, as 11 digits."""
    text = _prepare(text)
    text = _CN_DIGIT_RUN.sub(lambda m: m.group(0).translate(_CN_DIGITS), text)
    for match in _MOBILE_CANDIDATE.finditer(text):
        mobile = normalize_mobile(match.group(0))
        if mobile:
            return mobile
    return None


# ------------------------------------------------------------------------------------- name

# The common single-character surnames (about 95 % of the population) and compound ones.
# 区 is left out on purpose: 小区 would read as "little Ou".
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺"
    "顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧"
    "耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙"
    "鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫"
    "米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_COMPOUND = "欧阳|司马|诸葛|上官|东方|皇甫|尉迟|公孙|慕容|长孙|司徒|夏侯|令狐|端木"
_SURNAME = rf"(?:{_COMPOUND}|[{_SURNAMES}])"
_TITLE = r"(?:先生|女士|小姐|阿姨|大爷|大妈|大娘|大姐|大哥|师傅|老师|同志|老人家|奶奶|爷爷)"
_HAN = r"[\u4e00-\u9fff]"
# What may follow a name: punctuation, a space, the end, or the next clause's first word.
_AFTER_NAME = (
    r"(?=[\s,，。.!！?？:：;；、)）\-—]|$|住|今年|在|是|的|家|电话|手机|联系|来电|反映|投诉|"
    r"举报|求助|咨询|我|俺|本人|现|目前|从|于|年)"
)
_PERSON = (
    rf"(?:{_SURNAME}{_TITLE}"  # 王女士
    rf"|[小老]{_SURNAME}(?!{_HAN}{{2}})"  # 小张, 老刘
    rf"|{_SURNAME}(?![上下今去昨前本该此这那])(?:{_HAN}{{1,2}}?){_AFTER_NAME})"  # 王秀英
)
_SELF_INTRO = re.compile(
    r"(?:我叫|我的名字(?:是|叫)|我名字叫|俺叫|本人(?:叫|是|姓名)?|联系人(?:是)?[:：]?|"
    r"反映人[:：]?|投诉人[:：]?|举报人[:：]?|诉求人[:：]?|姓名[:：]?|署名[:：]?|联系我|"
    r"(?:我|俺)是(?:[^,，。.!！?？\s]{1,14}?(?:的|业主|住户|居民|村民|员工)(?:住户|业主|家长|学生|导购|员工|老师|村民)?|大学生|学生|家长|业主|住户|居民|村民)?)"
    rf"\s*(?P<name>{_PERSON}|小{_HAN}{_AFTER_NAME})"
)
_SURNAME_ONLY = re.compile(rf"(?:我|俺|本人|^|[,，。\s])姓(?P<surname>{_SURNAME})(?!{_HAN}{{2}})")
# "何女士反映：…", "彭大爷来电：…" at the start; "——丁女士" or "…，杜先生，1330…" near the end.
_TITLED = rf"{_SURNAME}{_TITLE}"
_LEADING_TITLED = re.compile(rf"^\s*(?P<name>{_TITLED})(?:来电|反映|投诉|举报|求助|咨询|称|说)")
_TITLED_SIGNATURE = re.compile(
    rf"(?:[^\u4e00-\u9fff]|^)(?P<name>{_TITLED})[\s,，。:：]*(?:电话|手机|联系方式|联系电话)?[\s:：]*"
    rf"(?:\+?86)?1[3-9]\d|(?:[,，。.\s—\-]|^)(?P<tail>{_TITLED})[\s。.!！]*$"
)
_NOT_A_NAME = frozenset("王某 张某 李某 刘某 陈某 老板 老师 老人 老伴 老家 小孩 小区 小学".split())


def extract_name(text: str) -> str | None:
    """The name the citizen gives for themself (full name, surname + title, or a surname)."""
    text = _prepare(text)
    for pattern in (_LEADING_TITLED, _SELF_INTRO):
        match = pattern.search(text)
        if match and match.group("name") not in _NOT_A_NAME:
            return match.group("name")
    match = _TITLED_SIGNATURE.search(text)
    if match:
        return match.group("name") or match.group("tail")
    match = _SURNAME_ONLY.search(text)
    if match:
        surname = match.group("surname")
        titled = re.search(rf"{surname}{_TITLE}", text)
        return titled.group(0) if titled else surname
    return None


# --------------------------------------------------------------------------------- location

# Place words by tier: 3 = estate / road / village (a department can walk to it), 2 = an
# institution or a named facility, 1 = a district or a shop. A place made of several
# components ranks one tier higher per extra component (安平镇工业集中区 over 电镀厂).
_PLACE_WORDS = {
    3: "小区 花园 家园 新村 公寓 社区 街道 大道 大街 胡同 路 街 巷 弄 村 苑 园 湾 大院 城 "
    "外环 内环 环路 园区 工业园 工地 华府",
    2: "大厦 广场 中心 商场 市场 菜场 超市 医院 卫生院 保健院 诊所 药房 学校 小学 中学 "
    "幼儿园 学院 大学 公园 景区 酒店 宾馆 民宿 饭店 餐厅 饭馆 影城 游乐场 度假村 客运站 "
    "火车站 汽车站 高铁站 车站 地铁站 加油站 停车场 站 码头 机场 厂 场 大桥 立交桥 桥 "
    "派出所 管委会 村委会 图书馆 博物馆 家具城 驾校 会所 出口 入口 匝道 收费站 服务区 沟",
    1: "开发区 自治区 省 市 区 县 镇 乡 店 馆 山 河",
}
_PLACE_TIER = {w: tier for tier, words in _PLACE_WORDS.items() for w in words.split()}
_PLACE_WORD = re.compile("|".join(sorted(map(re.escape, _PLACE_TIER), key=len, reverse=True)))
# Places that are specific without a name in front ("在火车站打的车").
_STANDALONE = frozenset("火车站 汽车站 客运站 高铁站 机场".split())
# A place word right after one of these is an ordinary word (一路, 出院, 条村道), not a place.
_NOT_BEFORE = frozenset("一半有条走马道出让过修迷那这哪每全整满住进回医法当现在")
_NOT_AFTER = {"站": "着住起了", "城": "市里", "场": "合面景所"}
_NUMBERED = re.compile(
    r"[0-9一二三四五六七八九十]{1,4}(?:号院|号楼|号|栋|幢|单元|期|组|楼|层|室)"
    r"(?:[0-9一二三四五六七八九十]{1,4}(?:号楼|号|栋|幢|单元|楼|层|室))*"
)
_ROAD_CODE = re.compile(r"(?:省道|国道|县道|高速)?(?<![A-Za-z0-9])[SGXY]\d{2,4}(?![0-9])")
_CROSSING = re.compile(
    r"(?P<a>[\u4e00-\u9fff]{1,5}(?:大道|大街|路|街))[和与跟同及](?P<b>[\u4e00-\u9fff]{1,5}"
    r"(?:大道|大街|路|街))(?:交叉口|交汇处|十字路口|路口|交界处)?"
)
_BUS_ROUTE = re.compile(r"(?:公交|夜班)?\d+路")  # 12路公交车 is a route, not a road
_LANDMARK_TAIL = re.compile(r"(?:北门|南门|东门|西门|正门|门口|旁边|对面|附近|楼下|底下|中段|一带)")
# Words a place name never starts with; the left scan stops after them.
_LEFT_STOPS = sorted(
    (
        # single characters only where they never end a place name (not 才 as in 育才路,
        # 开 as in 开元路, 上 as in 上海路)
        "在 住 到 去 从 往 是 的 了 我 俺 这 那 个 就 都 也 还 说 把 被 让 给 请 不 没 或 进 要 用 "
        "报 介绍 楼下 回到 回 "
        "住在 家住 居住 位于 地址 地点 我和 我跟 他和 她和 我们 我家 俺们 咱们 你们 他们 "
        "这个 那个 这边 那边 这里 那里 这家 那家 一家 某家 有个 有家 一个 时候 上班 下班 "
        "打车 坐车 买的 办的 开的 租的 进了 回到 要求 想要 找到 问了 反映 投诉 举报 附近 "
        "旁边 门口 对面 带着 刚刚 今天 昨天 用的 只能 只有 而且 但是 因为 所以 可以 可是 "
        "如果 希望 必须 应该 然后 结果 又是 再去 才能 经常 总是 老是 天天 好多 很多 一些 "
        "有些 各个 其他 别的 周边 周围 比如 像是 按照 连锁 那条 这条 一条 中小 每天 晚上 "
        "早上 中午 下午 外面 里面 前面 后面 半夜 凌晨 一直 已经 现在"
    ).split(),
    key=len,
    reverse=True,
)
_MAX_NAME = 5  # characters of proper name before a place word
_GENERIC_PLACES = frozenset(
    "小区 本市 我市 全市 市区 城区 老城区 县城 城里 市里 区里 县里 镇上 村里 乡下 老家 外地 "
    "本地 当地 街上 路上 路边 马路 公路 大街 农村 城市 山区 社区 学校 医院 市场 超市 工地 "
    "车站 公园 广场 小学 中学 幼儿园 大学 诊所 药房 酒店 店 馆 厂 站 村 镇 区 县 市 省 "
    "中小学 市中心 乡村 禁放区 禁区 政府 奶茶店 干洗店 烧烤店 洗车店 理发店 饭店 餐馆 饭馆 外省 "
    "这个小区 那个小区 我们小区 本小区 隔壁小区 对面小区 全城 满城 商场 停车场 菜场".split()
)
_NOT_PLACE_START = re.compile(
    r"^(?:[一二两三四五六七八九十几多每]+[个家条座栋片所处趟次星些]|[小大老新旧该本此]\w{0,2}$"
    r"|[跟与同向对给]\w{1,2}$)"
)


def _left_start(text: str, end: int, floor: int) -> int:
    """Where the name before a place word at `end` starts (scan left, stop at function words)."""
    pos = end
    while pos > floor and end - pos < _MAX_NAME:
        ch = text[pos - 1]
        if not (ch.isalnum() and not ch.isspace()):
            break
        if any(text.startswith(stop, pos - len(stop)) for stop in _LEFT_STOPS):
            break
        pos -= 1
    return pos


def _components(text: str) -> list[tuple[int, int, int]]:
    """(start, end, tier) of every place component: a name + place word, or a number part."""
    found: list[tuple[int, int, int]] = []
    for match in _PLACE_WORD.finditer(text):
        word, at, after = match.group(0), match.start(), match.end()
        if at > 0 and text[at - 1] in _NOT_BEFORE and len(word) == 1:
            continue
        if after < len(text) and text[after] in _NOT_AFTER.get(word, ""):
            continue
        start = _left_start(text, at, 0)
        if start == at and word not in _STANDALONE:
            continue  # a bare place word without a name
        found.append((start, after, _PLACE_TIER[word]))
    for match in _NUMBERED.finditer(text):
        found.append((match.start(), match.end(), 3))
    for match in _ROAD_CODE.finditer(text):
        found.append((match.start(), match.end(), 3))
    return sorted(found)


def _places(text: str) -> list[tuple[str, int, int]]:
    """Adjacent components joined into places: (phrase, tier, start); crossings first."""
    places = [(m.group(0), 5, m.start()) for m in _CROSSING.finditer(text)]
    comps = [*_components(text), (len(text) + 1, len(text) + 1, 0)]
    start = end = tier = count = -1
    has_name = False
    for c_start, c_end, c_tier in comps:
        if start >= 0 and c_start <= end:
            end = max(end, c_end)
            tier = max(tier, c_tier)
            count += 1
            has_name = has_name or not _NUMBERED.fullmatch(text[c_start:c_end])
            continue
        if start >= 0 and has_name:
            tail = _LANDMARK_TAIL.match(text, end)
            if tail and text[start:end][-1] not in "号栋幢":
                end = tail.end()
            phrase = text[start:end]
            if not (
                phrase in _GENERIC_PLACES
                or _NOT_PLACE_START.match(phrase)
                or _BUS_ROUTE.fullmatch(phrase)
            ):
                places.append((phrase, min(tier + count - 1, 4), start))
        start, end, tier, count = c_start, c_end, c_tier, 1
        has_name = not _NUMBERED.fullmatch(text[c_start:c_end])
    return sorted(places, key=lambda p: p[2])


def extract_location(text: str) -> str | None:
    """The most specific place phrase in the text (the first of the highest tier)."""
    places = _places(_prepare(text))
    if not places:
        return None
    best = max(tier for _, tier, _ in places)
    return next(phrase for phrase, tier, _ in places if tier == best)


def extract_fields(text: str) -> IntakeFields:
    """Location, the citizen's name and mobile found in an appeal (None where absent)."""
    return IntakeFields(
        location=extract_location(text), name=extract_name(text), phone=extract_phone(text)
    )
