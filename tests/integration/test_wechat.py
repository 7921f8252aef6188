"""The WeChat channel end to end: wechatpy signs and encrypts as WeChat would, a fake
api.weixin.qq.com receives what we send later, the fake Rasa answers."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from xml.sax.saxutils import escape

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.app import create_app
from bot.channels import wechat
from bot.channels.base import DeliveryError
from bot.keys import CHANNELS
from bot.messages import Button, Reply
from bot.settings import Settings
from store import handoffs
from store.db import Database
from store.models import ChannelIdentity, Conversation, Message
from tests.conftest import REDIS_URL
from tests.fakes.rasa import FakeRasa
from tests.fakes.wechat_api import FakeWeChatAPI

TOKEN = "wechat-test-token"
SECRET = "wechat-app-secret"
GH_ID = "gh_12345hotline"
CUSTOM_SEND = "/cgi-bin/message/custom/send"
STABLE_TOKEN = "/cgi-bin/stable_token"


def inbound_xml(openid: str, msg_type: str, **fields: str | int) -> str:
    """An inbound message as WeChat sends it (escaped text, no CDATA: an independent writer)."""
    head = {"ToUserName": GH_ID, "FromUserName": openid, "CreateTime": int(time.time())}
    items = {**head, "MsgType": msg_type, **fields}
    return "<xml>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in items.items()) + "</xml>"


def new_msg_id() -> str:
    return str(secrets.randbelow(2**63))


@dataclass
class Answer:
    status: int
    body: str
    content: str | None  # the text of a passive reply, None for "success" / errors


@dataclass
class WeChatPeer:
    """Plays WeChat's server: signs (and in safe mode encrypts) requests, reads our replies."""

    client: TestClient
    app_id: str
    aes_key: str
    api: FakeWeChatAPI

    @property
    def crypto(self) -> WeChatCrypto:
        return WeChatCrypto(TOKEN, self.aes_key, self.app_id)

    @staticmethod
    def signed_query(token: str = TOKEN, age: float = 0.0) -> dict[str, str]:
        """Query of a request WeChat signed `age` seconds ago (negative: a clock ahead)."""
        timestamp, nonce = str(int(time.time() - age)), secrets.token_hex(5)
        signer = WeChatSigner()
        signer.add_data(token, timestamp, nonce)
        return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce}

    async def post(
        self,
        xml: str,
        *,
        safe: bool = False,
        token: str = TOKEN,
        age: float = 0.0,
        query: dict[str, str] | None = None,
    ) -> Answer:
        query = dict(query) if query is not None else self.signed_query(token, age)
        body = xml.encode()
        if safe:
            wrapped = parse_message_fields(
                self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"])
            )
            query |= {"encrypt_type": "aes", "msg_signature": wrapped["MsgSignature"]}
            body = (
                f"<xml><ToUserName><![CDATA[{GH_ID}]]></ToUserName>"
                f"<Encrypt><![CDATA[{wrapped['Encrypt']}]]></Encrypt></xml>"
            ).encode()
        resp = await self.client.post("/webhooks/wechat", params=query, data=body)
        text = await resp.text()
        if resp.status != 200 or text == "success":
            return Answer(resp.status, text, None)
        if safe:
            fields = parse_message_fields(text)
            text = self.crypto.decrypt_message(
                text, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
            )
        reply = parse_message(text)
        assert reply.type == "text"
        assert reply.source == GH_ID
        return Answer(resp.status, text, reply.content)

    async def text(self, openid: str, content: str, msg_id: str | None = None, **kw) -> Answer:
        xml = inbound_xml(openid, "text", Content=content, MsgId=msg_id or new_msg_id())
        return await self.post(xml, **kw)

    async def event(self, openid: str, event: str, key: str = "", create_time: int = 0) -> Answer:
        xml = inbound_xml(
            openid, "event", Event=event, EventKey=key, CreateTime=create_time or int(time.time())
        )
        return await self.post(xml)

    async def wait_for_custom_sends(self, count: int, within: float = 5.0) -> list:
        for _ in range(int(within / 0.05)):
            if len(self.api.sent_texts) >= count:
                break
            await asyncio.sleep(0.05)
        return self.api.sent_texts


def parse_message_fields(xml: str) -> dict[str, str]:
    from defusedxml.ElementTree import fromstring

    return {child.tag: child.text or "" for child in fromstring(xml)}


@pytest.fixture
async def wechat_api() -> AsyncIterator[FakeWeChatAPI]:
    # A fresh AppID per test keeps token caches in the shared Redis apart.
    fake = FakeWeChatAPI("wx" + secrets.token_hex(8), SECRET)
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def reply_budget() -> float:
    """WECHAT_REPLY_BUDGET for the gateway under test; parametrize to shorten it."""
    return 4.5


@pytest.fixture
def safe_mode() -> bool:
    """Whether the account has an EncodingAESKey (安全模式); parametrize to turn it on."""
    return False


SAFE_MODE = pytest.mark.parametrize("safe_mode", [True])


@pytest.fixture
async def wx(
    request: pytest.FixtureRequest,
    settings: Settings,
    db: Database,
    wechat_api: FakeWeChatAPI,
    reply_budget: float,
    safe_mode: bool,
) -> AsyncIterator[WeChatPeer]:
    """The gateway with the WeChat channel on; `indirect` param "redis" uses the real Redis."""
    aes_key = base64.b64encode(os.urandom(32)).decode().rstrip("=") if safe_mode else ""
    update = {
        "wechat_token": SecretStr(TOKEN),
        "wechat_app_id": wechat_api.app_id,
        "wechat_app_secret": SecretStr(SECRET),
        "wechat_encoding_aes_key": SecretStr(aes_key),
        "wechat_api_base": wechat_api.url,
        "wechat_reply_budget": reply_budget,
        "rasa_timeout": 3.0,  # slow-Rasa tests stay below it
    }
    if getattr(request, "param", "memory") == "redis":
        update["redis_url"] = REDIS_URL
    app = create_app(settings.model_copy(update=update))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield WeChatPeer(client, wechat_api.app_id, aes_key, wechat_api)
    await client.close()


async def citizen_messages(db: Database) -> list[Message]:
    async with db.session() as s:
        stmt = select(Message).where(Message.sender == "citizen").order_by(Message.id)
        return list((await s.execute(stmt)).scalars())


async def identity(db: Database, openid: str) -> ChannelIdentity | None:
    async with db.session() as s:
        stmt = select(ChannelIdentity).where(ChannelIdentity.external_id == openid)
        return (await s.execute(stmt)).scalar_one_or_none()


# ---- URL verification and signatures -----------------------------------------------------------


async def test_url_verification_echoes_echostr(wx: WeChatPeer) -> None:
    query = wx.signed_query() | {"echostr": "7263589125647836429"}
    resp = await wx.client.get("/webhooks/wechat", params=query)
    assert resp.status == 200
    assert await resp.text() == "7263589125647836429"


async def test_url_verification_with_bad_signature_is_forbidden(wx: WeChatPeer) -> None:
    query = wx.signed_query(token="not-our-token") | {"echostr": "123"}
    resp = await wx.client.get("/webhooks/wechat", params=query)
    assert resp.status == 403
    assert "123" not in await resp.text()


async def test_post_with_bad_signature_is_forbidden_and_not_processed(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    answer = await wx.text("o-bad", "你好", token="not-our-token")
    assert answer.status == 403
    assert fake_rasa.received == []
    assert await citizen_messages(db) == []


# ---- replayed requests: the timestamp window ----------------------------------------------------


@pytest.mark.parametrize("age", [-400.0, 400.0, 86400.0])
async def test_url_verification_outside_the_timestamp_window_is_forbidden(
    wx: WeChatPeer, age: float, caplog: pytest.LogCaptureFixture
) -> None:
    query = wx.signed_query(age=age) | {"echostr": "55667788"}
    with caplog.at_level(logging.WARNING, logger="bot.channels.wechat"):
        resp = await wx.client.get("/webhooks/wechat", params=query)
    assert resp.status == 403
    assert "55667788" not in await resp.text()
    assert "wechat GET refused: timestamp is" in caplog.text


@SAFE_MODE
async def test_replayed_post_is_forbidden_and_not_processed(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    xml = inbound_xml("o-replay", "text", Content="在吗", MsgId=new_msg_id())
    with caplog.at_level(logging.WARNING, logger="bot.channels.wechat"):
        for safe in (False, True):
            answer = await wx.post(xml, safe=safe, age=6 * 60)
            assert answer.status == 403
            assert answer.body == "stale timestamp"
    assert fake_rasa.received == []
    assert await citizen_messages(db) == []
    assert re.search(
        r"wechat POST refused: timestamp is \+36[01] s off .*window 300 s", caplog.text
    )
    # The same message signed now (WeChat's own retry) is processed.
    assert (await wx.post(xml, safe=True)).content == "收到：在吗"


async def test_timestamp_inside_the_window_is_accepted(wx: WeChatPeer) -> None:
    assert (await wx.text("o-skew", "你好", age=4 * 60)).status == 200
    assert (await wx.text("o-skew", "在吗", age=-4 * 60)).content == "收到：在吗"
    query = wx.signed_query(age=250) | {"echostr": "1"}
    assert (await wx.client.get("/webhooks/wechat", params=query)).status == 200


async def test_timestamp_that_is_not_a_number_is_forbidden(wx: WeChatPeer) -> None:
    signer = WeChatSigner()
    signer.add_data(TOKEN, "yesterday", "n1")
    query = {"signature": signer.signature, "timestamp": "yesterday", "nonce": "n1", "echostr": "1"}
    resp = await wx.client.get("/webhooks/wechat", params=query)
    assert resp.status == 403


async def test_a_stale_request_with_a_bad_signature_is_refused_for_its_signature(
    wx: WeChatPeer,
) -> None:
    query = wx.signed_query(token="not-our-token", age=3600) | {"echostr": "1"}
    resp = await wx.client.get("/webhooks/wechat", params=query)
    assert (resp.status, await resp.text()) == (403, "invalid signature")


async def test_the_window_is_a_setting(
    settings: Settings, db: Database, wechat_api: FakeWeChatAPI
) -> None:
    app = create_app(
        settings.model_copy(
            update={"wechat_token": SecretStr(TOKEN), "wechat_timestamp_window": 30.0}
        )
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        peer = WeChatPeer(client, wechat_api.app_id, "", wechat_api)
        fresh = peer.signed_query(age=20) | {"echostr": "1"}
        assert (await client.get("/webhooks/wechat", params=fresh)).status == 200
        old = peer.signed_query(age=60) | {"echostr": "1"}
        assert (await client.get("/webhooks/wechat", params=old)).status == 403


async def test_without_token_there_is_no_wechat_route(gateway) -> None:
    resp = await gateway.get("/webhooks/wechat", params={"echostr": "1"})
    assert resp.status == 404


# ---- answering ---------------------------------------------------------------------------------


async def test_plaintext_message_gets_passive_reply_with_numbered_buttons(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    answer = await wx.text("o-plain", "你好")
    assert answer.status == 200
    assert "您好，我是12345智能助手。" in answer.content
    assert "1. 社保" in answer.content and "2. 转人工" in answer.content
    assert [m.text for m in await citizen_messages(db)] == ["你好"]
    # Replying with a number picks that button.
    await wx.text("o-plain", "2")
    assert fake_rasa.received[-1]["message"] == "/request_human"
    assert fake_rasa.received[-1]["metadata"]["channel"] == "wechat"


async def test_several_replies_are_merged_and_links_kept(
    wx: WeChatPeer, fake_rasa: FakeRasa
) -> None:
    fake_rasa.responder = lambda sender, text: [
        {"text": "第一段"},
        {"text": "详情请看", "custom": {"link": "https://example.gov.cn/si"}},
    ]
    answer = await wx.text("o-merge", "社保")
    assert answer.content == "第一段\n\n详情请看\nhttps://example.gov.cn/si"


@SAFE_MODE
async def test_safe_mode_round_trip_with_chinese_emoji_and_cdata_end(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    text = "医保报销]]><xml>怎么办😀"
    answer = await wx.text("o-safe", text, safe=True)
    assert answer.status == 200
    assert answer.content == f"收到：{text}"
    assert fake_rasa.received[-1]["message"] == text
    assert [m.text for m in await citizen_messages(db)] == [text]


@SAFE_MODE
async def test_safe_mode_with_wrong_msg_signature_is_forbidden(
    wx: WeChatPeer, fake_rasa: FakeRasa
) -> None:
    query = wx.signed_query()
    wrapped = parse_message_fields(
        wx.crypto.encrypt_message(inbound_xml("o-x", "text", Content="x", MsgId="1"), "n", "1")
    )
    query |= {"encrypt_type": "aes", "msg_signature": "0" * 40}
    body = f"<xml><Encrypt><![CDATA[{wrapped['Encrypt']}]]></Encrypt></xml>"
    resp = await wx.client.post("/webhooks/wechat", params=query, data=body.encode())
    assert resp.status == 403
    assert fake_rasa.received == []


@SAFE_MODE
async def test_safe_mode_for_another_appid_is_refused(wx: WeChatPeer, fake_rasa: FakeRasa) -> None:
    wx.app_id = "wxsomeoneelse000000"
    answer = await wx.text("o-x", "你好", safe=True)
    assert answer.status == 400
    assert fake_rasa.received == []


@SAFE_MODE
async def test_plaintext_post_is_refused_when_safe_mode_is_configured(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    """A plaintext post's signature covers no part of its body: with a key, believe none."""
    answer = await wx.text("o-plain", "帮我查一下工单", safe=False)
    assert (answer.status, answer.body) == (403, "safe mode required")
    assert fake_rasa.received == []
    assert await citizen_messages(db) == []
    assert (await wx.text("o-plain", "帮我查一下工单", safe=True)).status == 200


async def test_a_nonce_reused_with_another_body_is_refused(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    """A captured signed query string cannot carry a body of the attacker's choosing."""
    query = wx.signed_query()
    first = await wx.post(inbound_xml("o-n1", "text", Content="你好", MsgId="71"), query=query)
    assert first.status == 200
    forged = inbound_xml("o-victim", "text", Content="转人工", MsgId="72")
    answer = await wx.post(forged, query=query)
    assert (answer.status, answer.body) == (403, "nonce reused")
    assert [r["message"] for r in fake_rasa.received] == ["你好"]
    # The same body under the same nonce is WeChat's own retry: answered, once.
    again = await wx.post(inbound_xml("o-n1", "text", Content="你好", MsgId="71"), query=query)
    assert again.status == 200
    assert len(fake_rasa.received) == 1


async def test_the_same_msgid_from_two_followers_is_two_messages(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    """MsgId is unique per follower: the dedupe key is (openid, MsgId)."""
    a = await wx.text("o-first", "路灯坏了", msg_id="6400000000000000001")
    b = await wx.text("o-second", "井盖丢了", msg_id="6400000000000000001")
    assert (a.content, b.content) == ("收到：路灯坏了", "收到：井盖丢了")
    assert sorted(r["message"] for r in fake_rasa.received) == ["井盖丢了", "路灯坏了"]
    assert len(await citizen_messages(db)) == 2


async def test_a_retry_of_a_message_stored_but_not_answered_is_answered(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    """A failure after the message was committed leaves it unanswered: WeChat's retry of it
    is answered, not dropped as a duplicate."""
    xml = inbound_xml("o-fail", "text", Content="社保卡丢了怎么补办", MsgId=new_msg_id())
    async with db.engine.begin() as conn:  # the hand-off table is unavailable for a moment
        await conn.exec_driver_sql("ALTER TABLE handoff RENAME TO handoff_away")
    try:
        first = await wx.post(xml)
    finally:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ALTER TABLE handoff_away RENAME TO handoff")
    assert first.body == "success"
    [stored] = await citizen_messages(db)
    assert stored.status == "received"

    retry = await wx.post(xml)  # WeChat's retry
    assert retry.content == "收到：社保卡丢了怎么补办"
    assert [r["message"] for r in fake_rasa.received] == ["社保卡丢了怎么补办"]
    [stored] = await citizen_messages(db)
    assert stored.status == "processed"
    assert wx.api.sent_texts == []  # answered once, passively


# ---- retries and the reply budget --------------------------------------------------------------


@pytest.mark.parametrize("wx", ["memory", "redis"], indirect=True)
async def test_concurrent_retries_are_answered_once(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    fake_rasa.delay = 0.4
    xml = inbound_xml("o-retry", "text", Content="公积金怎么提取", MsgId=new_msg_id())
    answers = await asyncio.gather(*(wx.post(xml) for _ in range(3)))
    contents = [a.content for a in answers]
    assert contents.count("收到：公积金怎么提取") == 1
    assert [a.body for a in answers if a.content is None] == ["success", "success"]
    assert len(fake_rasa.received) == 1
    assert len(await citizen_messages(db)) == 1
    await asyncio.sleep(0.2)
    assert wx.api.sent_texts == []  # answered passively, not a second time


@pytest.mark.parametrize("wx", ["memory", "redis"], indirect=True)
async def test_sequential_retries_are_answered_once(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    xml = inbound_xml("o-seq", "text", Content="营业执照怎么办", MsgId=new_msg_id())
    answers = [await wx.post(xml) for _ in range(3)]
    assert answers[0].content == "收到：营业执照怎么办"
    assert [a.body for a in answers[1:]] == ["success", "success"]
    assert len(fake_rasa.received) == 1
    assert len(await citizen_messages(db)) == 1
    assert wx.api.sent_texts == []


@pytest.mark.parametrize("reply_budget", [0.3])
async def test_slow_answer_goes_out_through_customer_service_api(
    wx: WeChatPeer, fake_rasa: FakeRasa
) -> None:
    fake_rasa.delay = 1.0  # longer than the budget (and a retry's), shorter than rasa_timeout
    xml = inbound_xml("o-slow", "text", Content="社保断缴怎么办", MsgId=new_msg_id())
    start = time.monotonic()
    first = await wx.post(xml)
    assert first.body == "success"
    assert time.monotonic() - start < 0.7
    retry = await wx.post(xml)  # WeChat retrying meanwhile: still one answer
    assert retry.body == "success"
    sent = await wx.wait_for_custom_sends(1)
    assert sent == [("o-slow", "收到：社保断缴怎么办")]
    await asyncio.sleep(0.3)
    assert len(wx.api.sent_texts) == 1
    assert len(fake_rasa.received) == 1


@pytest.mark.parametrize("reply_budget", [1.5])
async def test_retry_waiting_on_a_running_turn_gets_the_answer(
    wx: WeChatPeer, fake_rasa: FakeRasa
) -> None:
    fake_rasa.delay = 2.0
    xml = inbound_xml("o-wait", "text", Content="在吗", MsgId=new_msg_id())
    first = asyncio.create_task(wx.post(xml))
    await asyncio.sleep(1.6)
    retry = await wx.post(xml)  # arrives while the turn runs; the answer lands in its budget
    assert (await first).body == "success"
    assert retry.content == "收到：在吗"
    await asyncio.sleep(0.3)
    assert wx.api.sent_texts == []
    assert len(fake_rasa.received) == 1


# ---- events ------------------------------------------------------------------------------------


async def test_subscribe_welcomes_once_and_marks_subscribed(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    created = int(time.time())
    first = await wx.event("o-sub", "subscribe", create_time=created)
    assert "12345智能助手" in first.content
    again = await wx.event("o-sub", "subscribe", create_time=created)  # WeChat's retry
    assert again.body == "success"
    assert [r["message"] for r in fake_rasa.received] == ["你好"]
    assert (await identity(db, "o-sub")).subscribed is True


async def test_unsubscribe_marks_identity_and_stays_silent(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    await wx.text("o-unsub", "你好")
    calls = len(fake_rasa.received)
    answer = await wx.event("o-unsub", "unsubscribe")
    assert answer.body == "success"
    assert len(fake_rasa.received) == calls
    assert (await identity(db, "o-unsub")).subscribed is False
    await wx.event("o-unsub", "subscribe")
    assert (await identity(db, "o-unsub")).subscribed is True


async def test_menu_click_reaches_the_dialogue_as_text(wx: WeChatPeer, fake_rasa: FakeRasa) -> None:
    answer = await wx.event("o-menu", "CLICK", key="FAQ_SI")
    assert answer.content == "收到：社保政策咨询"
    unknown = await wx.event("o-menu", "CLICK", key="NO_SUCH_KEY")
    assert unknown.content == wechat.UNKNOWN_MENU
    assert [r["message"] for r in fake_rasa.received] == ["社保政策咨询"]


async def test_view_event_needs_no_answer(wx: WeChatPeer, fake_rasa: FakeRasa) -> None:
    answer = await wx.event("o-view", "VIEW", key="https://example.gov.cn/")
    assert answer.body == "success"
    assert fake_rasa.received == []


# ---- other message types -----------------------------------------------------------------------


async def test_voice_with_recognition_is_read_as_text(wx: WeChatPeer, fake_rasa: FakeRasa) -> None:
    xml = inbound_xml(
        "o-voice", "voice", MediaId="m1", Format="amr", Recognition="路灯坏了", MsgId=new_msg_id()
    )
    assert (await wx.post(xml)).content == "收到：路灯坏了"


MEDIA_NOTICE = "目前只能识别文字，请用文字描述您的问题，或回复“转人工”。"
PIC_URL = "http://mmbiz.qpic.cn/mmbiz_jpg/abc123/0"
# (MsgType, its fields as WeChat sends them, the stored label, the stored attachment)
MEDIA = [
    (
        "image",
        {"PicUrl": PIC_URL, "MediaId": "img-media-1"},
        "[图片]",
        {"kind": "image", "media_id": "img-media-1", "url": PIC_URL},
    ),
    (
        "voice",
        {"MediaId": "voice-media-1", "Format": "amr"},
        "[语音]",
        {"kind": "voice", "media_id": "voice-media-1", "format": "amr"},
    ),
    (
        "video",
        {"MediaId": "video-media-1", "ThumbMediaId": "thumb-1"},
        "[视频]",
        {"kind": "video", "media_id": "video-media-1", "thumb_media_id": "thumb-1"},
    ),
    (
        "shortvideo",
        {"MediaId": "video-media-2", "ThumbMediaId": "thumb-2"},
        "[视频]",
        {"kind": "video", "media_id": "video-media-2", "thumb_media_id": "thumb-2"},
    ),
    (
        "location",
        {
            "Location_X": "30.274085",
            "Location_Y": "120.155070",
            "Scale": "15",
            "Label": "幸福路8号",
        },
        "[位置] 幸福路8号 (30.274085, 120.15507)",
        {"kind": "location", "label": "幸福路8号", "lat": 30.274085, "lng": 120.15507},
    ),
    (
        "link",
        {"Title": "小区停车难", "Description": "帖子", "Url": "https://bbs.example.cn/t/1"},
        "[链接] 小区停车难 https://bbs.example.cn/t/1",
        {
            "kind": "link",
            "title": "小区停车难",
            "description": "帖子",
            "url": "https://bbs.example.cn/t/1",
        },
    ),
]


@pytest.mark.parametrize(
    ("msg_type", "fields", "label", "stored"), MEDIA, ids=[m[0] for m in MEDIA]
)
@SAFE_MODE
async def test_media_is_stored_and_answered_with_the_text_only_notice(
    wx: WeChatPeer,
    fake_rasa: FakeRasa,
    db: Database,
    msg_type: str,
    fields: dict[str, str],
    label: str,
    stored: dict,
) -> None:
    xml = inbound_xml(f"o-{msg_type}", msg_type, MsgId=new_msg_id(), **fields)
    answer = await wx.post(xml, safe=True)
    assert answer.content == MEDIA_NOTICE
    assert fake_rasa.received == []
    [msg] = await citizen_messages(db)
    assert msg.text == label
    assert msg.payload == {"attachments": [stored]}
    assert msg.status == "processed"
    again = await wx.post(xml, safe=True)  # WeChat's retry: stored once, answered once
    assert again.body == "success"
    assert len(await citizen_messages(db)) == 1


async def test_media_while_an_agent_owns_the_chat_gets_no_bot_answer(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    await wx.text("o-owned", "你好")
    async with db.session() as s:
        conv = (
            await s.execute(
                select(Conversation)
                .join(ChannelIdentity)
                .where(ChannelIdentity.external_id == "o-owned")
            )
        ).scalar_one()
        await handoffs.request(s, conv, "request_human")
    xml = inbound_xml("o-owned", "image", PicUrl=PIC_URL, MediaId="m-owned", MsgId=new_msg_id())
    answer = await wx.post(xml)
    assert answer.body == "success"
    assert [m.text for m in await citizen_messages(db)] == ["你好", "[图片]"]
    assert len(fake_rasa.received) == 1
    await asyncio.sleep(0.2)
    assert wx.api.sent_texts == []


async def test_voice_with_empty_recognition_is_stored_as_voice(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    xml = inbound_xml(
        "o-voice3", "voice", MediaId="m3", Format="speex", Recognition="  ", MsgId=new_msg_id()
    )
    assert (await wx.post(xml)).content == MEDIA_NOTICE
    assert [m.text for m in await citizen_messages(db)] == ["[语音]"]
    assert fake_rasa.received == []


async def test_unknown_message_type_gets_a_notice_and_is_not_stored(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    xml = inbound_xml("o-odd", "miniprogrampage", Title="小程序", MsgId=new_msg_id())
    assert (await wx.post(xml)).content == wechat.ONLY_TEXT
    assert await citizen_messages(db) == []
    assert fake_rasa.received == []


# ---- hostile or broken input -------------------------------------------------------------------


async def test_entity_declarations_are_rejected(
    wx: WeChatPeer, fake_rasa: FakeRasa, db: Database
) -> None:
    xml = (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<xml><ToUserName>gh</ToUserName><FromUserName>o-evil</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&b;</Content>"
        "<MsgId>1</MsgId></xml>"
    )
    answer = await wx.post(xml)
    assert answer.status == 400
    assert fake_rasa.received == []
    assert await citizen_messages(db) == []


async def test_malformed_xml_is_rejected(wx: WeChatPeer, fake_rasa: FakeRasa) -> None:
    assert (await wx.post("<xml><Content>x</xml>")).status == 400
    assert (await wx.post("<xml><Content>no sender</Content></xml>")).status == 400
    assert fake_rasa.received == []


async def test_oversized_body_is_refused(wx: WeChatPeer, fake_rasa: FakeRasa) -> None:
    answer = await wx.text("o-big", "长" * 40_000)
    assert answer.status == 413
    assert fake_rasa.received == []


async def test_a_valid_message_after_a_rejected_one_is_processed(
    wx: WeChatPeer, fake_rasa: FakeRasa
) -> None:
    msg_id = new_msg_id()
    assert (await wx.post(f"<xml><MsgId>{msg_id}</MsgId>")).status == 400
    assert (await wx.text("o-after", "在吗", msg_id=msg_id)).content == "收到：在吗"


# ---- the channel adapter and the access token --------------------------------------------------


async def test_adapter_reuses_token_and_renews_it_when_refused(wx: WeChatPeer) -> None:
    adapter = wx.client.app[CHANNELS].get("wechat")
    await adapter.send(
        "o-push", [Reply("您的工单已办结。", buttons=(Button("满意", "/satisfied"),))]
    )
    await adapter.send("o-push", [Reply("请对办理结果评价。", sender="system")])
    assert len(wx.api.calls_to(STABLE_TOKEN)) == 1
    assert [t for _, t in wx.api.sent_texts] == [
        "您的工单已办结。\n\n1. 满意\n请回复数字选择。",
        "请对办理结果评价。",
    ]
    wx.api.invalidate_token()
    await adapter.send("o-push", [Reply("第三条")])
    tokens = wx.api.calls_to(STABLE_TOKEN)
    assert len(tokens) == 2 and tokens[1]["body"]["force_refresh"] is True
    refused, accepted = wx.api.calls_to(CUSTOM_SEND)[-2:]
    assert not refused["accepted"] and accepted["accepted"]
    assert wx.api.sent_texts[-1] == ("o-push", "第三条")
    # The renewed token is cached again.
    await adapter.send("o-push", [Reply("第四条")])
    assert len(wx.api.calls_to(STABLE_TOKEN)) == 2


async def test_adapter_raises_delivery_error_outside_the_window(wx: WeChatPeer) -> None:
    adapter = wx.client.app[CHANNELS].get("wechat")
    wx.api.errors.append(45015)
    with pytest.raises(DeliveryError) as info:
        await adapter.send("o-gone", [Reply("您的工单已派单。")])
    assert info.value.errcode == 45015
    assert info.value.retry is False  # a plain text cannot go out until the citizen writes
    assert wx.api.sent_texts == []


async def test_adapter_says_which_failures_are_worth_retrying(wx: WeChatPeer) -> None:
    adapter = wx.client.app[CHANNELS].get("wechat")
    notice = [Reply("您的工单已派单。", sender="system")]
    retry: dict[str, bool] = {}
    for name, fail in (
        ("system error", lambda: wx.api.errors.append(-1)),
        ("HTTP 502", lambda: wx.api.http_errors.append(502)),
        ("unsubscribed", lambda: wx.api.errors.append(43004)),
        ("invalid openid", lambda: wx.api.errors.append(40003)),
    ):
        fail()
        with pytest.raises(DeliveryError) as info:
            await adapter.send("o-flaky", notice)
        retry[name] = info.value.retry
    assert retry == {
        "system error": True,
        "HTTP 502": True,
        "unsubscribed": False,
        "invalid openid": False,
    }
    await adapter.send("o-flaky", notice)
    assert wx.api.sent_texts == [("o-flaky", "您的工单已派单。")]


async def test_template_message_for_status_push(wx: WeChatPeer) -> None:
    wx.api.add_template("TPL_STATUS")
    adapter = wx.client.app[CHANNELS].get("wechat")
    await adapter.send_template(
        "o-tpl",
        "TPL_STATUS",
        {"keyword1": "20260101A1B2C3", "keyword2": {"value": "办理中"}},
        "https://example.gov.cn/lookup",
    )
    call = wx.api.calls_to("/cgi-bin/message/template/send")[-1]
    assert call["accepted"]
    assert call["body"] == {
        "touser": "o-tpl",
        "template_id": "TPL_STATUS",
        "url": "https://example.gov.cn/lookup",
        "data": {"keyword1": {"value": "20260101A1B2C3"}, "keyword2": {"value": "办理中"}},
    }
