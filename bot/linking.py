"""One citizen across channels: "绑定" in one channel gives a one-time code, "绑定 123456" in
another links both channel identities to the same citizen.

Codes are 6 digits from `secrets`, valid 10 minutes, single use, one live code per identity.
Redeeming is limited with store/limits.py, counted before the code is looked at, so parallel
guesses cannot slip past the limit: 5 wrong codes per channel identity and, where the channel
sees the citizen's connection (the web widget), 20 per client address in 15 minutes; beyond
that the answer is LOCKED until the window ends. There is no global cap: one would be a switch
that a few throw-away sessions pull to turn 绑定 off for everyone. Many wrong codes overall
are logged as a warning for the operators instead. Every wrong, expired or already used code
gets the same answer.
"""

from __future__ import annotations

import logging
import re
import secrets

from aiohttp import web
from sqlalchemy import select

from bot.keys import BUS, DB, ROUTER
from bot.messages import CLIENT_SUBJECT, InboundMessage, Reply
from bot.text import clean_text, for_nlu
from store import conversations, limits, links
from store.bus import Bus
from store.models import ChannelIdentity, Conversation

log = logging.getLogger(__name__)

COMMAND = re.compile(r"(?:绑定账号|关联账号|绑定)(?:[\s:：]*(\d{6}))?[。.!！]?")
CODE_TTL = 10 * 60
FAIL_WINDOW = 15 * 60
REDEEM_PER_IDENTITY = limits.Limit("link:identity", max_attempts=5, window_seconds=FAIL_WINDOW)
REDEEM_PER_ADDRESS = limits.Limit("link:address", max_attempts=20, window_seconds=FAIL_WINDOW)
WARN_WRONG_ALL = 300  # wrong codes from all identities per FAIL_WINDOW: logged, never refused
MAX_ISSUED = 5  # codes per identity and FAIL_WINDOW

CHANNEL_NAMES = {"web": "网页", "wechat": "微信", "telegram": "Telegram", "rest": "开放接口"}

ISSUED = (
    "您的账号绑定验证码是 {code}，10分钟内有效，仅可使用一次。\n"
    "请在另一个渠道（网页、微信或 Telegram）向12345发送“绑定 {code}”，"
    "两个渠道即关联为同一账号，工单进度会在这些渠道通知您。\n"
    "如非本人操作请忽略，切勿把验证码告诉他人。"
)
REFUSED = "验证码无效或已过期。请在原渠道重新发送“绑定”获取新的验证码。"
LOCKED = "验证码错误次数过多，请15分钟后再试。"
TOO_MANY_CODES = "获取验证码过于频繁，请15分钟后再试。"
SAME_IDENTITY = "请在另一个渠道（网页、微信或 Telegram）发送“绑定 {code}”完成绑定。"
LINKED = "绑定成功！您的{names}账号已关联为同一账号，工单进度会在这些渠道通知您。"
NOTICE = "您的账号刚刚与{channel}绑定。如非本人操作，请联系12345人工客服。"
BUSY = "抱歉，暂时无法生成验证码，请稍后再试。"


def channel_name(channel: str) -> str:
    """The Chinese name of a channel as citizens know it."""
    return CHANNEL_NAMES.get(channel, channel)


def parse(text: str) -> tuple[bool, str | None] | None:
    """(True, code or None) if `text` is a link command, else None.

    Full-width digits and traditional characters are accepted ("綁定 １２３４５６").
    """
    match = COMMAND.fullmatch(for_nlu(clean_text(text)).strip())
    if match is None:
        return None
    return True, match.group(1)


async def intercept(app: web.Application, msg: InboundMessage) -> list[Reply] | None:
    """Answer a link command ("绑定", "绑定账号", "关联账号", "绑定 123456"); None otherwise."""
    parsed = parse(msg.text)
    if parsed is None:
        return None
    identity_id = await _identity_id(app, msg)
    code = parsed[1]
    if code is None:
        return [await _issue(app[BUS], identity_id)]
    return [await _redeem(app, msg, identity_id, code)]


async def _identity_id(app: web.Application, msg: InboundMessage) -> int:
    async with app[DB].session() as s:
        conv = await conversations.ensure_conversation(
            s, msg.channel, msg.external_id, msg.metadata.get("display_name")
        )
        return conv.channel_identity_id


async def _issue(bus: Bus, identity_id: int) -> Reply:
    if await bus.incr(f"link:issue:{identity_id}", FAIL_WINDOW) > MAX_ISSUED:
        return Reply(TOO_MANY_CODES)
    previous = await bus.get(f"link:issued:{identity_id}")
    if previous:  # one live code per identity
        await bus.delete(f"link:code:{previous}")
    for _ in range(20):
        code = f"{secrets.randbelow(1_000_000):06d}"
        if await bus.set_nx(f"link:code:{code}", str(identity_id), CODE_TTL):
            await bus.set(f"link:issued:{identity_id}", code, CODE_TTL)
            return Reply(ISSUED.format(code=code))
    return Reply(BUSY)


async def _redeem(app: web.Application, msg: InboundMessage, identity_id: int, code: str) -> Reply:
    bus = app[BUS]
    checks = [(REDEEM_PER_IDENTITY, f"{msg.channel}:{msg.external_id}")]
    subject = msg.metadata.get(CLIENT_SUBJECT)
    if isinstance(subject, str) and subject:
        checks.append((REDEEM_PER_ADDRESS, subject))
    attempt = await limits.attempt(bus, checks)
    if not attempt.allowed:
        return Reply(LOCKED)
    issuer = await bus.get(f"link:code:{code}")
    if issuer is None:
        return await _wrong(bus)
    if int(issuer) == identity_id:
        await attempt.succeeded()  # the citizen's own code: not a guess
        return Reply(SAME_IDENTITY.format(code=code))
    if not await bus.set_nx(f"link:claim:{code}", str(identity_id), CODE_TTL):
        return await _wrong(bus)  # someone redeemed it a moment ago
    await attempt.succeeded()
    await bus.delete(f"link:code:{code}")
    await bus.delete(f"link:issued:{issuer}")
    async with app[DB].session() as s:
        first = await s.get(ChannelIdentity, int(issuer))
        if first is None:
            return Reply(REFUSED)
        survivor = await links.link_identity(s, identity_id, first.citizen_id)
        names = [channel_name(c) for c in await links.linked_channels(s, survivor)]
        stmt = select(Conversation.id).where(Conversation.channel_identity_id == int(issuer))
        first_conversation = (await s.execute(stmt)).scalar_one_or_none()
    if first_conversation is not None:
        await _notify(app, first_conversation, msg.channel)
    return Reply(LINKED.format(names="、".join(names)))


async def _wrong(bus: Bus) -> Reply:
    """A wrong code (already counted by the limits); many overall are worth a warning."""
    if await bus.incr("link:wrong:all", FAIL_WINDOW) == WARN_WRONG_ALL:
        log.warning(
            "%d wrong link codes within %d s: someone may be guessing", WARN_WRONG_ALL, FAIL_WINDOW
        )
    return Reply(REFUSED)


async def _notify(app: web.Application, conversation_id: int, channel: str) -> None:
    """Tell the first channel that another one was linked (so a stranger's link is noticed)."""
    notice = Reply(NOTICE.format(channel=channel_name(channel)), sender="system")
    try:
        await app[ROUTER].push(conversation_id, [notice])
    except Exception:
        log.exception("link notice to conversation %s failed", conversation_id)
