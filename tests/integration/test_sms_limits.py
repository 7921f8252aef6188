"""The SMS budget per client address (issue 9): throw-away identities asking codes for
throw-away numbers from one address stop at that address's cap, through the chat command and
the local fake of Aliyun SMS, on the in-memory bus and on real Redis. Other addresses, and
platforms that hide the address (their user id is the subject), are not affected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot import phone_verification as chat
from bot.app import create_app
from bot.keys import BUS, CIPHER, DB, SMS
from bot.messages import CLIENT_SUBJECT, InboundMessage
from bot.settings import Settings
from bot.sms import AliyunSms
from store import phone_verification as pv
from store.bus import MemoryBus, RedisBus
from store.crypto import PersonalDataCipher
from store.db import Database
from tests.conftest import REDIS_URL, new_data_key
from tests.fakes.aliyun_sms import FakeAliyunSms
from tests.integration.test_client_address import PROXY, address, via
from tests.integration.test_web_channel import open_chat, say

ATTACKER = "ip:203.0.113.50"
NEIGHBOUR = "ip:198.51.100.9"
HOURLY = pv.SENDS_PER_ADDRESS_HOUR.max_attempts
DAILY = pv.SENDS_PER_ADDRESS_DAY.max_attempts


@pytest.fixture
async def fake_sms() -> AsyncIterator[FakeAliyunSms]:
    fake = FakeAliyunSms()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture(params=["memory", "redis"])
async def app(
    request: pytest.FixtureRequest, db: Database, fake_sms: FakeAliyunSms
) -> AsyncIterator[web.Application]:
    """What the 验证手机 command uses: the store, a fresh bus namespace, SMS to the fake."""
    if request.param == "redis":
        bus = RedisBus(REDIS_URL, prefix=f"test-sms-{uuid.uuid4().hex[:8]}:")
    else:
        bus = MemoryBus()
    http = aiohttp.ClientSession()
    application = web.Application()
    application[DB], application[BUS] = db, bus
    application[CIPHER] = PersonalDataCipher(new_data_key())
    application[SMS] = AliyunSms(
        http,
        endpoint=fake_sms.url,
        access_key_id=fake_sms.access_key_id,
        access_key_secret=fake_sms.access_key_secret,
        sign_name=next(iter(fake_sms.sign_names)),
        template_code=next(iter(fake_sms.template_codes)),
    )
    yield application
    await http.close()
    await bus.close()


async def ask_code(
    app: web.Application, channel: str, who: str, phone: str, subject: str | None = None
) -> str:
    """One "验证手机 <phone>" turn; the reply's text."""
    metadata = {CLIENT_SUBJECT: subject} if subject else {}
    msg = InboundMessage(
        channel=channel, external_id=who, text=f"验证手机 {phone}", metadata=metadata
    )
    replies = await chat.intercept(app, msg)
    assert replies is not None and len(replies) == 1
    return replies[0].text


def throwaway_phone(n: int) -> str:
    return f"139{n:08d}"


async def test_throwaway_identities_from_one_address_stop_at_its_cap(app, fake_sms) -> None:
    """40 fresh widget sessions from one address, each with a fresh number, in parallel."""
    answers = await asyncio.gather(
        *(ask_code(app, "web", f"throwaway-{n}", throwaway_phone(n), ATTACKER) for n in range(40))
    )
    refused = chat.ADDRESS_LIMIT.format(wait="1小时")
    assert sum("验证码已发送" in a for a in answers) == HOURLY
    assert answers.count(refused) == 40 - HOURLY
    assert len(fake_sms.messages) == HOURLY  # the SMS budget spent, and no more
    # Another address is unaffected, and so is a WeChat user (the platform hides the address).
    assert "验证码已发送" in await ask_code(app, "web", "neighbour", "13700001111", NEIGHBOUR)
    assert "验证码已发送" in await ask_code(app, "wechat", "o-citizen", "13700002222")
    assert len(fake_sms.messages) == HOURLY + 2


async def test_an_address_gets_at_most_a_days_cap_even_across_hours(app, fake_sms) -> None:
    sent, n = 0, 0
    for _hour in range(DAILY // HOURLY):
        for _ in range(HOURLY):
            n += 1
            assert "验证码已发送" in await ask_code(
                app, "web", f"day-{n}", throwaway_phone(1000 + n), ATTACKER
            )
            sent += 1
        # What the end of the hour does to the hourly counter.
        await app[BUS].delete(pv.SENDS_PER_ADDRESS_HOUR.key(ATTACKER))
    assert sent == DAILY
    answer = await ask_code(app, "web", "day-late", throwaway_phone(9999), ATTACKER)
    assert answer == chat.ADDRESS_LIMIT.format(wait="24小时")
    assert len(fake_sms.messages) == DAILY


async def test_a_send_that_did_not_go_out_costs_the_address_nothing(app, fake_sms) -> None:
    for n in range(HOURLY):
        fake_sms.http_errors.append(503)
        answer = await ask_code(app, "web", f"outage-{n}", throwaway_phone(2000 + n), ATTACKER)
        assert answer == chat.SEND_FAILED
    answer = await ask_code(app, "web", "after-outage", throwaway_phone(2999), ATTACKER)
    assert "验证码已发送" in answer


@pytest.fixture
async def widget_gateway(
    settings: Settings, db: Database, fake_sms: FakeAliyunSms
) -> AsyncIterator[TestClient]:
    """The gateway behind a trusted proxy (the test client), SMS to the fake. The in-memory bus:
    the gateway's Redis keys have no per-test prefix, and identity ids restart in every test
    database (Redis is covered above, on a namespace of its own)."""
    update: dict[str, object] = {
        "trusted_proxies": PROXY,
        "sms_endpoint": fake_sms.url,
        "sms_access_key_id": fake_sms.access_key_id,
        "sms_access_key_secret": SecretStr(fake_sms.access_key_secret),
        "sms_sign_name": next(iter(fake_sms.sign_names)),
        "sms_template_code": next(iter(fake_sms.template_codes)),
    }
    client = TestClient(
        TestServer(create_app(settings.model_copy(update=update)), host="127.0.0.1")
    )
    await client.start_server()
    yield client
    await client.close()


async def test_fresh_widget_sessions_from_one_address_share_its_cap(
    widget_gateway, fake_sms
) -> None:
    """Through the widget's socket behind the proxy: the address is the one the proxy saw."""
    attacker, neighbour = address(), address()
    answers = []
    for n in range(HOURLY + 2):
        ws, _ = await open_chat(widget_gateway, headers=via(attacker))
        answers.append((await say(ws, f"验证手机 {throwaway_phone(3000 + n)}"))["text"])
        await ws.close()
    assert sum("验证码已发送" in a for a in answers) == HOURLY
    assert answers[-2:] == [chat.ADDRESS_LIMIT.format(wait="1小时")] * 2
    ws, _ = await open_chat(widget_gateway, headers=via(neighbour))
    assert "验证码已发送" in (await say(ws, "验证手机 13700003333"))["text"]
    await ws.close()
    assert len(fake_sms.messages) == HOURLY + 1
