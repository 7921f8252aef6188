"""Proving a phone number in chat: "验证手机 13812345678" (or "验证手机", then the number) sends
a 6-digit code by SMS; the code typed in the same conversation verifies the phone, and every
channel of the citizens who verified the same phone becomes one citizen.

The rules on codes (5 minutes, 5 tries, cooldown, daily caps, hashed at rest) live in
store/phone_verification.py; this module talks to the citizen and to the SMS provider. A bare
6-digit message is taken as a code only while this identity has one outstanding, and a bare
number only right after "验证手机"; anything else goes on to the assistant. Phones appear masked
in every reply and log line. Without SMS settings the command explains that it is off.
Sends are capped per identity, per phone and per client address (`client_subject`), so
throw-away identities asking for throw-away numbers from one place stop at that place's cap.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.keys import BUS, CIPHER, DB, ROUTER, SMS
from bot.linking import channel_name
from bot.messages import CLIENT_SUBJECT, InboundMessage, Reply
from bot.sms import BAD_NUMBER, BUSINESS_LIMIT, SmsError
from bot.text import clean_text, for_nlu
from store import conversations, links
from store import phone_verification as pv
from store.models import ChannelIdentity, Conversation

log = logging.getLogger(__name__)

COMMAND = re.compile(r"(?:验证|认证|绑定|关联)手机(?:号码|号)?[\s:：]*([+\d\s\-()（）]*)[。.!！]?")
CODE = re.compile(r"(?:验证码[\s:：]*)?(\d{6})[。.!！]?")
NUMBER = re.compile(r"[+\d\s\-()（）]{11,20}")
ASK_TTL_SECONDS = 5 * 60

OFF = (
    "抱歉，短信验证暂未开通。您可以在一个渠道发送“绑定”获取绑定码，"
    "再在另一个渠道发送“绑定 验证码”，把两个渠道关联为同一账号。"
)
ASK_NUMBER = "请发送需要验证的11位手机号码，我们会向该号码发送6位短信验证码。"
INVALID_NUMBER = "手机号码格式不正确，请发送11位中国大陆手机号码，例如“验证手机 13812345678”。"
SENT = (
    "验证码已发送至 {phone}，5分钟内有效。请直接在这里回复6位验证码。\n"
    "验证后，凡验证过同一手机号的渠道将关联为同一账号。如非本人操作请忽略。"
)
COOLDOWN = "验证码发送过于频繁，请1分钟后再试。"
DAILY_LIMIT = "该号码或本账号获取验证码次数已达上限，请24小时后再试。"
ADDRESS_LIMIT = "当前网络获取验证码过于频繁，请{wait}后再试。"
WAITS = {pv.HOUR_SECONDS: "1小时", pv.DAY_SECONDS: "24小时"}
CARRIER_LIMIT = "该号码接收短信过于频繁，请稍后再试。"
SEND_FAILED = "抱歉，验证码短信暂时发送失败，请稍后再试。"
WRONG = "验证码不正确，还可以再试{left}次。"
TOO_MANY = "验证码错误次数过多，已失效。请发送“验证手机”重新获取。"
EXPIRED = "验证码已过期或已失效，请发送“验证手机”重新获取。"
VERIFIED_ALONE = "手机号 {phone} 验证成功！今后在其他渠道验证同一手机号，即可关联为同一账号。"
VERIFIED_LINKED = (
    "手机号 {phone} 验证成功！您的{names}账号已关联为同一账号，工单进度会在这些渠道通知您。"
)
NOTICE = "您的账号刚刚通过手机号验证与{channel}关联。如非本人操作，请在本渠道发送“解绑”。"


def _asking_key(identity_id: int) -> str:
    return f"phone:asking:{identity_id}"


def _pending_key(identity_id: int) -> str:
    return f"phone:pending:{identity_id}"


async def intercept(app: web.Application, msg: InboundMessage) -> list[Reply] | None:
    """Answer "验证手机 …", a number right after it, or a code while one is outstanding;
    None for every other message."""
    text = for_nlu(clean_text(msg.text)).strip()
    command, code = COMMAND.fullmatch(text), CODE.fullmatch(text)
    if command is None and code is None and NUMBER.fullmatch(text) is None:
        return None
    bus = app[BUS]
    identity_id = await _identity_id(app, msg)
    if command is not None:
        if app.get(SMS) is None:
            return [Reply(OFF)]
        number = command.group(1).strip()
        if not number:
            await bus.set(_asking_key(identity_id), "1", ASK_TTL_SECONDS)
            return [Reply(ASK_NUMBER)]
        await bus.delete(_asking_key(identity_id))
        return [await _send(app, msg, identity_id, number)]
    if code is not None:
        if await bus.get(_pending_key(identity_id)) is None:
            return None  # no code outstanding: six digits mean something else
        return [await _check(app, msg, identity_id, code.group(1))]
    if await bus.get(_asking_key(identity_id)) is None or app.get(SMS) is None:
        return None
    await bus.delete(_asking_key(identity_id))
    return [await _send(app, msg, identity_id, text)]


async def _identity_id(app: web.Application, msg: InboundMessage) -> int:
    async with app[DB].session() as s:
        conv = await conversations.ensure_conversation(
            s, msg.channel, msg.external_id, msg.metadata.get("display_name")
        )
        return conv.channel_identity_id


def client_subject(msg: InboundMessage) -> str:
    """Who asks, for the per-address SMS caps: the client address the web widget saw, or the
    platform's own user id where the platform (WeChat, Telegram, a REST integration) hides it."""
    subject = msg.metadata.get(CLIENT_SUBJECT)
    if isinstance(subject, str) and subject:
        return subject
    return f"{msg.channel}:{msg.external_id}"


async def _send(app: web.Application, msg: InboundMessage, identity_id: int, raw: str) -> Reply:
    bus, cipher, sender = app[BUS], app[CIPHER], app[SMS]
    try:
        mobile = pv.parse_phone(raw)
    except pv.InvalidPhone:
        return Reply(INVALID_NUMBER)
    phone_hash = cipher.keyed_hash(mobile)
    try:
        sends = await pv.reserve(bus, identity_id, phone_hash, client_subject(msg))
    except pv.Cooldown:
        return Reply(COOLDOWN)
    except pv.DailyLimit:
        return Reply(DAILY_LIMIT)
    except pv.AddressLimit as refused:
        return Reply(ADDRESS_LIMIT.format(wait=WAITS.get(refused.window_seconds, "一段时间")))
    async with app[DB].session() as s:
        issued = await pv.issue(s, cipher, identity_id, mobile)
    try:
        await sender.send_code(issued.phone, issued.code)
    except SmsError as exc:
        log.warning(
            "verification SMS to %s for identity %s failed: %s",
            issued.phone_masked,
            identity_id,
            exc.code,
        )
        async with app[DB].session() as s:
            await pv.withdraw(s, issued.verification_id)
        if exc.retry:
            await pv.release(bus, identity_id, phone_hash, sends)
        if exc.code == BUSINESS_LIMIT:
            return Reply(CARRIER_LIMIT)
        if exc.code == BAD_NUMBER:
            return Reply(INVALID_NUMBER)
        return Reply(SEND_FAILED)
    await bus.set(_pending_key(identity_id), "1", pv.CODE_TTL_SECONDS)
    log.info("verification code sent to %s for identity %s", issued.phone_masked, identity_id)
    return Reply(SENT.format(phone=issued.phone_masked))


async def _check(app: web.Application, msg: InboundMessage, identity_id: int, code: str) -> Reply:
    async with app[DB].session() as s:
        before = {i.id for i in await links.identities_of(s, await _citizen_id(s, identity_id))}
        checked = await pv.check(s, app[CIPHER], identity_id, code)
        if checked.outcome == pv.VERIFIED and checked.citizen_id is not None:
            joined = [i.id for i in await links.identities_of(s, checked.citizen_id)]
            names = [channel_name(c) for c in await links.linked_channels(s, checked.citizen_id)]
            newcomers = [i for i in joined if i not in before]
            stmt = select(Conversation.id).where(Conversation.channel_identity_id.in_(newcomers))
            to_tell = list((await s.execute(stmt)).scalars()) if newcomers else []
    if checked.outcome == pv.WRONG:
        return Reply(WRONG.format(left=checked.tries_left))
    await app[BUS].delete(_pending_key(identity_id))
    if checked.outcome == pv.TOO_MANY:
        return Reply(TOO_MANY)
    if checked.outcome != pv.VERIFIED:
        return Reply(EXPIRED)
    log.info("identity %s verified %s", identity_id, checked.phone_masked)
    for conversation_id in to_tell:
        await _notify(app, conversation_id, msg.channel)
    if len(joined) > 1:
        return Reply(VERIFIED_LINKED.format(phone=checked.phone_masked, names="、".join(names)))
    return Reply(VERIFIED_ALONE.format(phone=checked.phone_masked))


async def _citizen_id(session: AsyncSession, identity_id: int) -> int:
    return (await session.get_one(ChannelIdentity, identity_id)).citizen_id


async def _notify(app: web.Application, conversation_id: int, channel: str) -> None:
    """Tell a channel that just joined through the phone (so a wrong merge is noticed)."""
    notice = Reply(NOTICE.format(channel=channel_name(channel)), sender="system")
    try:
        await app[ROUTER].push(conversation_id, [notice])
    except Exception:
        log.exception("phone link notice to conversation %s failed", conversation_id)
