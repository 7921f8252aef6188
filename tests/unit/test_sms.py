"""The Aliyun SMS client: the RPC signature against Aliyun's documented example, and SendSms
against the local fake, which recomputes the signature and answers with Aliyun's error codes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from bot import sms
from bot.settings import Settings
from tests.fakes.aliyun_sms import FakeAliyunSms

# Aliyun's documented signature example (RPC signature, DescribeRegions, key "testsecret").
DOC_PARAMS = {
    "Timestamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}
DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
    "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
    "%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
)
DOC_SIGNATURE = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
PHONE = "13812345678"


def test_string_to_sign_matches_aliyuns_example() -> None:
    assert sms.string_to_sign(DOC_PARAMS) == DOC_STRING_TO_SIGN


def test_signature_matches_aliyuns_example() -> None:
    assert sms.sign(DOC_PARAMS, "testsecret") == DOC_SIGNATURE
    assert sms.sign({**DOC_PARAMS, "Signature": "ignored"}, "testsecret") == DOC_SIGNATURE


def test_percent_encoding_follows_rfc3986() -> None:
    assert sms.percent_encode("a b*c~d+e/f") == "a%20b%2Ac~d%2Be%2Ff"
    assert sms.percent_encode("12345热线") == "12345%E7%83%AD%E7%BA%BF"
    assert sms.percent_encode('{"code":"123456"}') == "%7B%22code%22%3A%22123456%22%7D"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAliyunSms]:
    server = FakeAliyunSms()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    yield session
    await session.close()


def client(fake: FakeAliyunSms, http: aiohttp.ClientSession, **overrides: str) -> sms.AliyunSms:
    options = {
        "endpoint": fake.url,
        "access_key_id": fake.access_key_id,
        "access_key_secret": fake.access_key_secret,
        "sign_name": next(iter(fake.sign_names)),
        "template_code": next(iter(fake.template_codes)),
        **overrides,
    }
    return sms.AliyunSms(http, **options)


async def test_code_reaches_the_phone(fake, http) -> None:
    biz_id = await client(fake, http).send_code(PHONE, "042137")
    assert biz_id and fake.last_code(PHONE) == "042137"
    sent = fake.messages[-1]
    assert sent.sign_name == "12345热线" and sent.params["Action"] == "SendSms"
    assert sent.params["TemplateParam"] == '{"code":"042137"}'


async def test_wrong_secret_is_signature_does_not_match(fake, http) -> None:
    with pytest.raises(sms.SmsError) as caught:
        await client(fake, http, access_key_secret="not-the-secret").send_code(PHONE, "111111")
    assert caught.value.code == "SignatureDoesNotMatch" and not caught.value.retry
    assert fake.messages == []


async def test_unknown_key_and_template_are_refused_for_good(fake, http) -> None:
    with pytest.raises(sms.SmsError) as caught:
        await client(fake, http, access_key_id="LTAI-other").send_code(PHONE, "111111")
    assert caught.value.code == "InvalidAccessKeyId.NotFound" and not caught.value.retry
    with pytest.raises(sms.SmsError) as caught:
        await client(fake, http, template_code="SMS_0").send_code(PHONE, "111111")
    assert caught.value.code == "isv.SMS_TEMPLATE_ILLEGAL" and not caught.value.retry


async def test_carrier_limit_and_system_errors(fake, http) -> None:
    fake.per_number_limit = 1
    sender = client(fake, http)
    await sender.send_code(PHONE, "123456")
    with pytest.raises(sms.SmsError) as caught:
        await sender.send_code(PHONE, "654321")
    assert caught.value.code == sms.BUSINESS_LIMIT and not caught.value.retry
    fake.errors.append("isp.SYSTEM_ERROR")
    with pytest.raises(sms.SmsError) as caught:
        await sender.send_code("13900001111", "123456")
    assert caught.value.retry
    fake.http_errors.append(502)
    with pytest.raises(sms.SmsError) as caught:
        await sender.send_code("13900001111", "123456")
    assert caught.value.code == sms.UNREACHABLE and caught.value.retry


async def test_unreachable_endpoint_may_be_retried(http) -> None:
    sender = sms.AliyunSms(
        http,
        endpoint="http://127.0.0.1:9",
        access_key_id="k",
        access_key_secret="s",
        sign_name="n",
        template_code="t",
    )
    with pytest.raises(sms.SmsError) as caught:
        await sender.send_code(PHONE, "123456")
    assert caught.value.code == sms.UNREACHABLE and caught.value.retry


def test_sender_is_off_unless_fully_configured() -> None:
    base = Settings(_env_file=None)
    assert sms.sender_from_settings(base, None) is None  # type: ignore[arg-type]
    full = base.model_copy(
        update={
            "sms_access_key_id": "k",
            "sms_access_key_secret": SecretStr("s"),
            "sms_sign_name": "12345",
            "sms_template_code": "SMS_1",
        }
    )
    assert isinstance(sms.sender_from_settings(full, None), sms.AliyunSms)  # type: ignore[arg-type]
    no_template = full.model_copy(update={"sms_template_code": ""})
    assert sms.sender_from_settings(no_template, None) is None  # type: ignore[arg-type]
