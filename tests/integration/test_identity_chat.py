"""The citizen's side of identity, through the gateway's router and REST channel, with SMS going
to the local fake of Aliyun SMS: "验证手机" → code by SMS → the code typed in chat verifies the
phone and links the channels that verified it; wrong codes, too many tries, cooldown, provider
refusals; "解绑" in chat and a supervisor's unlink in the console, all audited."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select, update

from bot import phone_verification as chat
from bot import unlinking
from bot.app import create_app
from bot.keys import BUS, CIPHER, DB, ROUTER
from bot.messages import InboundMessage
from bot.settings import Settings
from store import conversations
from store.categories import seed_taxonomy
from store.client import StoreClient
from store.models import AuditLog, ChannelIdentity, PhoneVerification, utcnow
from tests.fakes.aliyun_sms import FakeAliyunSms
from tests.integration.outbox_helpers import system_messages
from tests.integration.test_console_helpers import Console, claim_by_hand, make_agent, unique

PHONE = "13812345678"
MASKED = "138****5678"


@pytest.fixture
async def fake_sms() -> AsyncIterator[FakeAliyunSms]:
    fake = FakeAliyunSms()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def settings(settings: Settings, fake_sms: FakeAliyunSms) -> Settings:
    """The gateway with SMS pointed at the fake (claims by hand, open around the clock)."""
    return claim_by_hand(settings).model_copy(
        update={
            "sms_endpoint": fake_sms.url,
            "sms_access_key_id": fake_sms.access_key_id,
            "sms_access_key_secret": SecretStr(fake_sms.access_key_secret),
            "sms_sign_name": next(iter(fake_sms.sign_names)),
            "sms_template_code": next(iter(fake_sms.template_codes)),
        }
    )


async def say(gateway: TestClient, channel: str, who: str, text: str) -> str:
    """One citizen turn through the gateway's router; the replies' text."""
    if channel == "rest":
        resp = await gateway.post("/webhooks/rest/webhook", json={"sender": who, "message": text})
        assert resp.status == 200
        return "\n".join(r.get("text", "") for r in await resp.json())
    replies = await gateway.app[ROUTER].handle(InboundMessage(channel, who, text))
    return "\n".join(r.text for r in replies)


async def verify(gateway: TestClient, fake: FakeAliyunSms, channel: str, who: str) -> str:
    sent = await say(gateway, channel, who, f"验证手机 {PHONE}")
    assert MASKED in sent and PHONE not in sent, sent
    return await say(gateway, channel, who, fake.last_code(PHONE))


async def cooldown_over(gateway: TestClient) -> None:
    """What the phone's 60-second resend cooldown does when it runs out."""
    phone_hash = gateway.app[CIPHER].keyed_hash(PHONE)
    await gateway.app[BUS].delete(f"sms:cooldown:phone:{phone_hash}")


def store_client(gateway: TestClient) -> StoreClient:
    app = gateway.app
    return StoreClient(app[DB], app[BUS], app[CIPHER])


async def sender_id(gateway: TestClient, channel: str, who: str) -> str:
    async with gateway.app[DB].session() as s:
        return (await conversations.ensure_conversation(s, channel, who)).public_id


async def file_order(gateway: TestClient, channel: str, who: str, text: str) -> str:
    """What the work-order form files for this conversation (with someone else's phone, even)."""
    view = await store_client(gateway).create_work_order(
        sender_id=await sender_id(gateway, channel, who),
        idempotency_key=f"{channel}:{who}:{text}",
        kind="report",
        category_code="urban",
        description=text,
        location="人民路1号",
        contact_name="周先生",
        phone="13700000000",
    )
    return view.tracking_no


async def my_orders(gateway: TestClient, channel: str, who: str) -> list[str]:
    views = await store_client(gateway).my_work_orders(await sender_id(gateway, channel, who))
    return sorted(v.tracking_no for v in views)


async def audit_actions(gateway: TestClient) -> list[tuple[str, int | None]]:
    async with gateway.app[DB].session() as s:
        rows = (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars()
        return [(r.action, r.agent_id) for r in rows]


async def test_verified_phone_links_the_channels_that_verified_it(
    gateway, fake_sms, caplog
) -> None:
    caplog.set_level(logging.INFO)
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
    wechat_order = await file_order(gateway, "wechat", "o-1", "路灯坏了")
    answer = await verify(gateway, fake_sms, "wechat", "o-1")
    assert answer == chat.VERIFIED_ALONE.format(phone=MASKED)

    # Another channel: "验证手机" first, then the number, then the code from the SMS.
    await cooldown_over(gateway)
    assert await say(gateway, "rest", "r-1", "验证手机") == chat.ASK_NUMBER
    sent = await say(gateway, "rest", "r-1", "138 1234 5678")
    assert MASKED in sent and "5分钟" in sent
    answer = await say(gateway, "rest", "r-1", fake_sms.last_code(PHONE))
    assert "验证成功" in answer and "微信" in answer and "开放接口" in answer

    assert await my_orders(gateway, "rest", "r-1") == [wechat_order]
    told = [m.text for m in await system_messages(gateway.app[DB], "wechat", "o-1")]
    assert any("开放接口" in t and "解绑" in t for t in told)  # a wrong merge would be noticed
    assert len(fake_sms.messages) == 2
    assert await audit_actions(gateway) == [
        ("verify_phone", None),
        ("verify_phone", None),
        ("merge:phone", None),
    ]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert MASKED in logged and PHONE not in logged


async def test_wrong_codes_then_too_many_tries(gateway, fake_sms) -> None:
    await say(gateway, "rest", "r-2", f"验证手机 {PHONE}")
    code = fake_sms.last_code(PHONE)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = [await say(gateway, "rest", "r-2", wrong) for _ in range(5)]
    assert answers[:4] == [chat.WRONG.format(left=n) for n in (4, 3, 2, 1)]
    assert answers[4] == chat.TOO_MANY
    assert "验证成功" not in await say(gateway, "rest", "r-2", code)
    async with gateway.app[DB].session() as s:
        conv = await conversations.ensure_conversation(s, "rest", "r-2")
        identity = await s.get_one(ChannelIdentity, conv.channel_identity_id)
        await s.refresh(identity, ["citizen"])
        assert identity.citizen.phone_verified_at is None


async def test_expired_code_is_explained(gateway, fake_sms) -> None:
    await say(gateway, "rest", "r-exp", f"验证手机 {PHONE}")
    async with gateway.app[DB].session() as s:  # what five minutes do
        await s.execute(update(PhoneVerification).values(expires_at=utcnow()))
    assert await say(gateway, "rest", "r-exp", fake_sms.last_code(PHONE)) == chat.EXPIRED


async def test_invalid_number_and_resend_cooldown(gateway, fake_sms) -> None:
    assert await say(gateway, "rest", "r-3", "验证手机 12345") == chat.INVALID_NUMBER
    assert fake_sms.messages == []
    assert MASKED in await say(gateway, "rest", "r-3", f"验证手机号：{PHONE}")
    assert await say(gateway, "rest", "r-3", f"验证手机 {PHONE}") == chat.COOLDOWN
    assert await say(gateway, "rest", "r-4", f"验证手机 {PHONE}") == chat.COOLDOWN  # same phone
    assert len(fake_sms.messages) == 1


async def test_provider_refusals_are_explained_and_cost_no_code(gateway, fake_sms) -> None:
    fake_sms.errors.append("isv.BUSINESS_LIMIT_CONTROL")
    assert await say(gateway, "rest", "r-5", f"验证手机 {PHONE}") == chat.CARRIER_LIMIT
    # No code is outstanding, so six digits go on to the assistant.
    assert "收到" in await say(gateway, "rest", "r-5", "123456")

    fake_sms.errors.append("isp.SYSTEM_ERROR")
    assert await say(gateway, "rest", "r-6", "验证手机 13900001111") == chat.SEND_FAILED
    # A failure that may pass lifts the cooldown: asking again at once works.
    assert "139****1111" in await say(gateway, "rest", "r-6", "验证手机 13900001111")
    assert fake_sms.codes_for("13900001111")


async def test_without_sms_settings_the_command_explains(settings, db) -> None:
    app = create_app(settings.model_copy(update={"sms_access_key_id": ""}))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        assert await say(client, "rest", "r-7", f"验证手机 {PHONE}") == chat.OFF
    finally:
        await client.close()


async def test_citizen_unlinks_a_channel_and_its_orders_go_with_it(gateway, fake_sms) -> None:
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
    wechat_order = await file_order(gateway, "wechat", "o-8", "井盖缺失")
    rest_order = await file_order(gateway, "rest", "r-8", "占道经营")
    assert "验证成功" in await verify(gateway, fake_sms, "wechat", "o-8")
    await cooldown_over(gateway)
    assert "微信" in await verify(gateway, fake_sms, "rest", "r-8")
    assert await my_orders(gateway, "wechat", "o-8") == sorted([wechat_order, rest_order])

    answer = await say(gateway, "rest", "r-8", "解除绑定")
    assert answer.startswith("已解除绑定") and "微信" in answer
    assert await my_orders(gateway, "rest", "r-8") == [rest_order]
    assert await my_orders(gateway, "wechat", "o-8") == [wechat_order]
    assert await say(gateway, "rest", "r-8", "解绑") == unlinking.NOTHING
    # The phone stayed with WeChat; alone there, "解绑" forgets it.
    assert await say(gateway, "wechat", "o-8", "解绑") == unlinking.PHONE_FORGOTTEN
    actions = [a for a, _ in await audit_actions(gateway)]
    assert actions[-2:] == ["unlink:citizen", "forget_phone:citizen"]


async def test_supervisor_unlinks_an_identity_in_the_console(gateway, fake_sms, settings) -> None:
    for who in ("r-9a", "r-9b"):
        await cooldown_over(gateway)
        assert "验证成功" in await verify(gateway, fake_sms, "rest", who)
    target = await sender_id(gateway, "rest", "r-9b")
    agent_name, boss_name = unique("agent"), unique("supervisor")
    await make_agent(settings.database_url, agent_name)
    boss_id = await make_agent(settings.database_url, boss_name, "supervisor")
    agent, boss = Console(gateway), Console(gateway)
    try:
        assert (await agent.login(agent_name)).status == 200
        assert (await boss.login(boss_name)).status == 200
        path = f"/console/api/conversations/{target}"
        assert (await agent.get(f"{path}/identities")).status == 403
        assert (await agent.post(f"{path}/unlink")).status == 403
        listed = await (await boss.get(f"{path}/identities")).json()
        assert len(listed["identities"]) == 2 and listed["phone_verified"] is True
        assert sum(i["current"] for i in listed["identities"]) == 1
        assert sorted(i["masked_id"] for i in listed["identities"]) == ["**9a", "**9b"]
        assert "r-9a" not in json.dumps(listed)  # platform ids are shown masked
        assert (await boss.post(f"{path}/unlink", csrf=False)).status == 403
        assert (await boss.post("/console/api/conversations/nope/unlink")).status == 404
        done = await boss.post(f"{path}/unlink")
        assert done.status == 200 and (await done.json())["remaining_channels"] == ["rest"]
        assert (await boss.post(f"{path}/unlink")).status == 409  # alone now
        listed = await (await boss.get(f"{path}/identities")).json()
        assert len(listed["identities"]) == 1 and listed["phone_verified"] is False
    finally:
        await agent.close()
        await boss.close()
    assert ("unlink:supervisor", boss_id) in await audit_actions(gateway)
