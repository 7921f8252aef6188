"""One citizen across channels: link codes (real Redis and the in-memory bus) and merges
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot import linking
from bot.channels.base import ChannelRegistry
from bot.keys import BUS, CHANNELS, DB, ROUTER
from bot.messages import CLIENT_SUBJECT, InboundMessage, Reply
from bot.rasa_client import RasaClient
from bot.router import Router
from store.bus import MemoryBus, RedisBus
from store.db import Database
from store.models import AuditLog, ChannelIdentity, Citizen, WorkOrder
from tests.conftest import REDIS_URL


class RecordingChannel:
    """A channel adapter that keeps what it was asked to deliver (stands in for WeChat)."""

    name = "wechat"

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    async def send(self, external_id: str, replies: Sequence[Reply]) -> None:
        self.sent.append((external_id, [r.text for r in replies]))


WECHAT = web.AppKey("test_wechat", RecordingChannel)


@pytest.fixture(params=["memory", "redis"])
async def app(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[web.Application]:
    """The pieces of the gateway `intercept` uses, on a fresh bus namespace."""
    if request.param == "redis":
        bus = RedisBus(REDIS_URL, prefix=f"test-link-{uuid.uuid4().hex[:8]}:")
    else:
        bus = MemoryBus()
    http = aiohttp.ClientSession()
    application = web.Application()
    channels = ChannelRegistry()
    wechat = RecordingChannel()
    channels.register(wechat)
    application[DB], application[BUS], application[CHANNELS] = db, bus, channels
    application[ROUTER] = Router(db, bus, RasaClient("http://127.0.0.1:9", http, 1.0), channels)
    application[WECHAT] = wechat
    yield application
    await http.close()
    await bus.close()


def say(channel: str, who: str, text: str) -> InboundMessage:
    return InboundMessage(channel=channel, external_id=who, text=text)


async def issue(app: web.Application, channel: str, who: str, text: str = "绑定") -> str:
    replies = await linking.intercept(app, say(channel, who, text))
    assert replies is not None and len(replies) == 1
    match = re.search(r"\b(\d{6})\b", replies[0].text)
    assert match, replies[0].text
    assert "10分钟" in replies[0].text
    return match.group(1)


async def redeem(app: web.Application, channel: str, who: str, code: str) -> str:
    replies = await linking.intercept(app, say(channel, who, f"绑定 {code}"))
    assert replies is not None and len(replies) == 1
    return replies[0].text


async def citizen_of(db: Database, channel: str, who: str) -> int:
    async with db.session() as s:
        stmt = select(ChannelIdentity.citizen_id).where(
            ChannelIdentity.channel == channel, ChannelIdentity.external_id == who
        )
        return (await s.execute(stmt)).scalar_one()


async def test_ordinary_text_is_not_intercepted(app) -> None:
    for text in ("绑定银行卡怎么办", "我要投诉", "绑定 12345", "解除绑定"):
        assert await linking.intercept(app, say("web", "w1", text)) is None


@pytest.mark.parametrize("command", ["绑定", "绑定账号", "关联账号", "綁定"])
async def test_code_links_two_channels_into_one_citizen(app, db, command) -> None:
    code = await issue(app, "wechat", "openid-1", command)
    answer = await redeem(app, "telegram", "5001", code)
    assert "绑定成功" in answer and "微信" in answer and "Telegram" in answer
    assert await citizen_of(db, "wechat", "openid-1") == await citizen_of(db, "telegram", "5001")
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Citizen)) == 1
    # The first channel is told, so a link made by a stranger would not go unnoticed.
    assert app[WECHAT].sent and "Telegram" in app[WECHAT].sent[-1][1][0]


async def test_full_width_digits_are_accepted(app, db) -> None:
    code = await issue(app, "web", "sess-a")
    wide = "".join(chr(ord(d) - ord("0") + ord("０")) for d in code)
    answer = await redeem(app, "telegram", "5002", wide)
    assert "绑定成功" in answer and "网页" in answer


async def test_code_is_single_use(app, db) -> None:
    code = await issue(app, "web", "sess-b")
    assert "绑定成功" in await redeem(app, "telegram", "5003", code)
    assert await redeem(app, "wechat", "openid-3", code) == linking.REFUSED
    assert await citizen_of(db, "wechat", "openid-3") != await citizen_of(db, "web", "sess-b")


async def test_wrong_and_expired_codes_get_the_same_refusal(app, db) -> None:
    code = await issue(app, "web", "sess-c")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert await redeem(app, "telegram", "5004", wrong) == linking.REFUSED
    await app[BUS].delete(f"link:code:{code}")  # what expiry does after 10 minutes
    assert await redeem(app, "telegram", "5004", code) == linking.REFUSED


async def test_new_code_replaces_the_previous_one(app, db) -> None:
    old = await issue(app, "web", "sess-d")
    new = await issue(app, "web", "sess-d")
    if old != new:
        assert await redeem(app, "telegram", "5005", old) == linking.REFUSED
    assert "绑定成功" in await redeem(app, "telegram", "5005", new)


async def test_five_wrong_codes_lock_out_even_the_right_one(app, db) -> None:
    code = await issue(app, "web", "sess-e")
    wrong = f"{(int(code) + 7) % 1_000_000:06d}"
    for _ in range(5):
        assert await redeem(app, "telegram", "5006", wrong) == linking.REFUSED
    assert await redeem(app, "telegram", "5006", code) == linking.LOCKED
    # Another identity is not affected and the code still works for it.
    assert "绑定成功" in await redeem(app, "telegram", "5007", code)


async def test_parallel_wrong_codes_from_one_identity_stop_at_the_limit(app, db) -> None:
    code = await issue(app, "web", "sess-p")
    await linking.intercept(app, say("telegram", "5100", "绑定"))  # the guesser's identity exists
    wrong = [f"{(int(code) + k) % 1_000_000:06d}" for k in range(1, 51)]
    answers = await asyncio.gather(*(redeem(app, "telegram", "5100", w) for w in wrong))
    assert answers.count(linking.REFUSED) == linking.REDEEM_PER_IDENTITY.max_attempts
    assert answers.count(linking.LOCKED) == len(wrong) - linking.REDEEM_PER_IDENTITY.max_attempts
    assert await redeem(app, "telegram", "5100", code) == linking.LOCKED


async def test_throwaway_sessions_cannot_switch_linking_off_for_others(app, db) -> None:
    """60 identities × 5 wrong codes (300, the old global cap): others still link."""
    code = await issue(app, "wechat", "openid-victimless")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    async def throwaway(i: int) -> None:
        for _ in range(linking.REDEEM_PER_IDENTITY.max_attempts):
            await redeem(app, "telegram", f"throwaway-{i}", wrong)

    await asyncio.gather(*(throwaway(i) for i in range(60)))
    assert "绑定成功" in await redeem(app, "telegram", "5200", code)


async def test_wrong_codes_are_limited_per_client_address_on_the_web(app, db) -> None:
    code = await issue(app, "wechat", "openid-addr")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    attacker = {CLIENT_SUBJECT: "ip:203.0.113.50"}

    async def web_redeem(who: str, text: str, metadata: dict[str, str]) -> str:
        msg = InboundMessage(channel="web", external_id=who, text=text, metadata=metadata)
        replies = await linking.intercept(app, msg)
        assert replies is not None
        return replies[0].text

    limit = linking.REDEEM_PER_ADDRESS.max_attempts
    answers = await asyncio.gather(
        *(web_redeem(f"fresh-session-{i}", f"绑定 {wrong}", attacker) for i in range(limit + 10))
    )
    assert answers.count(linking.REFUSED) == limit
    # A fresh session from that address is locked out; a citizen elsewhere is not.
    assert await web_redeem("fresh-session-x", f"绑定 {code}", attacker) == linking.LOCKED
    elsewhere = {CLIENT_SUBJECT: "ip:198.51.100.9"}
    assert "绑定成功" in await web_redeem("citizen-web", f"绑定 {code}", elsewhere)


async def test_redeeming_in_the_same_identity_explains(app, db) -> None:
    code = await issue(app, "wechat", "openid-8")
    answer = await redeem(app, "wechat", "openid-8", code)
    assert "另一个渠道" in answer
    assert "绑定成功" in await redeem(app, "web", "sess-8", code)


async def test_relinking_is_idempotent_and_keeps_work_orders(app, db) -> None:
    await issue(app, "wechat", "openid-9")  # creates the wechat identity
    await linking.intercept(app, say("web", "sess-9", "绑定"))
    async with db.session() as s:
        for channel, who, no in (("wechat", "openid-9", "A1"), ("web", "sess-9", "B1")):
            identity = (
                await s.execute(select(ChannelIdentity).where(ChannelIdentity.external_id == who))
            ).scalar_one()
            s.add(
                WorkOrder(
                    tracking_no=f"T{no}",
                    citizen_id=identity.citizen_id,
                    channel_identity_id=identity.id,
                    description=f"{channel}的工单",
                )
            )
    code = await issue(app, "wechat", "openid-9")
    assert "绑定成功" in await redeem(app, "web", "sess-9", code)
    code = await issue(app, "web", "sess-9")
    answer = await redeem(app, "wechat", "openid-9", code)
    assert "绑定成功" in answer and "网页" in answer and "微信" in answer
    survivor = await citizen_of(db, "wechat", "openid-9")
    async with db.session() as s:
        owners = set((await s.execute(select(WorkOrder.citizen_id))).scalars())
    assert owners == {survivor}


async def test_merge_by_code_is_audited_without_personal_data(app, db) -> None:
    code = await issue(app, "wechat", "openid-10")
    assert "绑定成功" in await redeem(app, "telegram", "5010", code)
    survivor = await citizen_of(db, "wechat", "openid-10")
    async with db.session() as s:
        rows = (await s.execute(select(AuditLog))).scalars().all()
    assert [(r.action, r.agent_id) for r in rows] == [("merge:link_code", None)]
    assert rows[0].target.endswith(f"->{survivor}")
    assert "openid-10" not in rows[0].target and "5010" not in rows[0].target
