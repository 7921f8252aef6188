"""The human hand-off from a WeChat-protocol and a Telegram-protocol citizen.

The bot is down when the citizen writes 转人工, so the router opens a hand-off; an agent signed
into the console sees it appear, claims it and replies; the reply reaches the citizen's platform
(WeChat customer-service API / Telegram sendMessage, both local fakes); the citizen's next words
go to the console, not to Rasa; the agent returns the chat and the bot answers again.
"""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from xml.sax.saxutils import escape

import pytest
from aiohttp.test_utils import TestClient, TestServer
from defusedxml.ElementTree import fromstring
from pydantic import SecretStr
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from bot.app import create_app
from bot.channels.telegram import TELEGRAM
from bot.channels.wechat import WECHAT
from bot.router import MEDIA_NOTICE
from bot.settings import Settings
from store.db import Database
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram_api import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_api import FakeTelegramAPI, photo_update, text_update
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.integration.test_console_helpers import (
    Console,
    make_agent,
    next_event,
    unique,
    wait_until,
)

AGENT_REPLY = "您好，我是人工客服小李"
WECHAT_TOKEN = "handoff-wechat-token"
WECHAT_SECRET = "handoff-wechat-secret"
GH_ID = "gh_12345hotline"
TELEGRAM_SECRET = "handoff_webhook-secret"


class WeChatCitizen:
    """A 公众号 follower: WeChat's server signs and encrypts (safe mode) what they type."""

    platform = "wechat"

    def __init__(self, client: TestClient, api: FakeWeChatAPI, aes_key: str) -> None:
        self.client = client
        self.api = api
        self.crypto = WeChatCrypto(WECHAT_TOKEN, aes_key, api.app_id)
        self.external_id = "o" + secrets.token_hex(12)

    async def say(self, text: str) -> list[str]:
        """Send one text message; returns the passive reply the citizen sees at once, if any."""
        return await self._post({"MsgType": "text", "Content": text})

    async def send_photo(self) -> list[str]:
        """Send a picture; returns the passive reply the citizen sees at once, if any."""
        return await self._post(
            {
                "MsgType": "image",
                "PicUrl": "http://mmbiz.qpic.cn/mmbiz_jpg/handoff/0",
                "MediaId": "media-" + secrets.token_hex(6),
            }
        )

    async def _post(self, content: dict[str, str]) -> list[str]:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        signer = WeChatSigner()
        signer.add_data(WECHAT_TOKEN, timestamp, nonce)
        fields = {
            "ToUserName": GH_ID,
            "FromUserName": self.external_id,
            "CreateTime": timestamp,
            **content,
            "MsgId": str(secrets.randbelow(2**63)),
        }
        xml = "<xml>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items()) + "</xml>"
        wrapped = _xml_fields(self.crypto.encrypt_message(xml, nonce, timestamp))
        query = {
            "signature": signer.signature,
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": wrapped["MsgSignature"],
        }
        body = (
            f"<xml><ToUserName><![CDATA[{GH_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{wrapped['Encrypt']}]]></Encrypt></xml>"
        )
        resp = await self.client.post("/webhooks/wechat", params=query, data=body.encode())
        answer = await resp.text()
        assert resp.status == 200, answer
        await self.client.app[WECHAT].drain()
        if answer == "success":
            return []
        envelope = _xml_fields(answer)
        plain = self.crypto.decrypt_message(
            answer, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
        )
        reply = parse_message(plain)
        assert (reply.type, reply.source, reply.target) == ("text", GH_ID, self.external_id)
        return [reply.content]

    def pushed(self) -> list[str]:
        """Texts delivered to this citizen later, through the customer-service API."""
        return [text for openid, text in self.api.sent_texts if openid == self.external_id]


class TelegramCitizen:
    """A private chat with the bot: Telegram POSTs updates, the fake Bot API records sends."""

    platform = "telegram"

    def __init__(self, client: TestClient, api: FakeTelegramAPI) -> None:
        self.client = client
        self.api = api
        self.chat_id = 600_000_000 + secrets.randbelow(10**8)
        self.external_id = str(self.chat_id)
        self._update_ids = itertools.count(secrets.randbelow(10**6) * 100)

    async def say(self, text: str) -> list[str]:
        """Send one text message; returns what the bot sent to this chat while handling it."""
        return await self._post(
            text_update(next(self._update_ids), self.chat_id, text, first_name="小王")
        )

    async def send_photo(self) -> list[str]:
        """Send a photo; returns what the bot sent to this chat while handling it."""
        return await self._post(photo_update(next(self._update_ids), self.chat_id, "小王"))

    async def _post(self, update: dict[str, Any]) -> list[str]:
        before = len(self.pushed())
        resp = await self.client.post(
            "/webhooks/telegram",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
        )
        assert resp.status == 200, await resp.text()
        await self.client.app[TELEGRAM].drain()
        return self.pushed()[before:]

    def pushed(self) -> list[str]:
        """Texts the bot sent to this chat (sendMessage), oldest first."""
        return [
            str(p["text"])
            for p in self.api.called("sendMessage")
            if str(p["chat_id"]) == self.external_id
        ]


Citizen = WeChatCitizen | TelegramCitizen


def _xml_fields(xml: str) -> dict[str, str]:
    return {child.tag: child.text or "" for child in fromstring(xml)}


@pytest.fixture(params=["wechat", "telegram"])
async def citizen(
    request: pytest.FixtureRequest, settings: Settings, db: Database
) -> AsyncIterator[Citizen]:
    """The gateway with one messaging platform on (its API faked locally) and a citizen on it.

    Agents claim by hand and service is open around the clock, so the flow is deterministic.
    """
    update: dict[str, Any] = {
        "console_auto_assign": False,
        "service_hours": "mon-sun 00:00-24:00",
    }
    api: FakeWeChatAPI | FakeTelegramAPI
    if request.param == "wechat":
        api = FakeWeChatAPI("wx" + secrets.token_hex(8), WECHAT_SECRET)
        await api.start()
        aes_key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
        update |= {
            "wechat_token": SecretStr(WECHAT_TOKEN),
            "wechat_app_id": api.app_id,
            "wechat_app_secret": SecretStr(WECHAT_SECRET),
            "wechat_encoding_aes_key": SecretStr(aes_key),
            "wechat_api_base": api.url,
        }
    else:
        api = FakeTelegramAPI()
        await api.start()
        update |= {
            "telegram_token": SecretStr(TELEGRAM_TOKEN),
            "telegram_secret_token": SecretStr(TELEGRAM_SECRET),
            "telegram_api_base": api.base_url,
            "telegram_webhook_url": "https://hotline.example.cn/webhooks/telegram",
        }
    app = create_app(settings.model_copy(update=update))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        if isinstance(api, FakeWeChatAPI):
            yield WeChatCitizen(client, api, aes_key)
        else:
            yield TelegramCitizen(client, api)
    finally:
        await client.close()
        await api.close()


async def test_citizen_agent_round_trip(
    citizen: Citizen, fake_rasa: FakeRasa, settings: Settings
) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(citizen.client)
    try:
        assert (await console.login(name)).status == 200
        ws = await console.ws()

        # 1. The bot is down: the citizen asking for a person is apologised to on their platform
        #    and a hand-off opens.
        fake_rasa.status = 500
        first = await citizen.say("转人工")
        assert any("正在为您转接人工客服" in t for t in first), first

        # 2. It appears in the console without a reload, then in the queue.
        opened = await next_event(ws, lambda e: e["type"] == "handoff" and e["change"] == "opened")
        handoff = opened["handoff"]
        assert handoff["state"] == "pending"
        assert handoff["channel"] == citizen.platform
        assert handoff["last_text"] == "转人工"
        queue = await (await console.get("/console/api/handoffs")).json()
        assert [h["id"] for h in queue["handoffs"]] == [handoff["id"]]
        assert queue["handoffs"][0]["position"] == 1
        # The citizen is told their place in the queue on their platform.
        await wait_until(lambda: any("第1位" in t for t in citizen.pushed()))

        # The agent claims it and replies; the citizen gets both messages on their platform.
        hid = handoff["id"]
        claimed = await console.post(f"/console/api/handoffs/{hid}/claim")
        assert claimed.status == 200
        assert (await claimed.json())["handoff"]["state"] == "assigned"
        assert any("已接入" in t for t in citizen.pushed())
        sent = await console.post(f"/console/api/handoffs/{hid}/reply", {"text": AGENT_REPLY})
        assert sent.status == 200
        assert (await sent.json())["delivered"] is True
        # 3. What the platform received for this citizen, exactly the agent's words.
        assert citizen.pushed()[-1] == AGENT_REPLY

        # 4. While the agent owns the chat, the citizen's words reach the console, not Rasa,
        #    and the bot says nothing.
        fake_rasa.status = 200
        calls = len(fake_rasa.received)
        pushed = len(citizen.pushed())
        assert await citizen.say("我家地址是幸福路8号") == []
        live = await next_event(
            ws,
            lambda e: (
                e["type"] == "message"
                and e["message"]["from"] == "citizen"
                and e["conversation"] == handoff["conversation"]
            ),
        )
        assert live["message"]["text"] == "我家地址是幸福路8号"
        assert len(fake_rasa.received) == calls
        assert len(citizen.pushed()) == pushed
        detail = await (await console.get(f"/console/api/handoffs/{hid}")).json()
        transcript = [(m["from"], m["text"]) for m in detail["transcript"]]
        assert transcript[0] == ("citizen", "转人工")
        assert ("agent", AGENT_REPLY) in transcript
        assert transcript[-1] == ("citizen", "我家地址是幸福路8号")

        # 5. Back to the bot: the citizen is told on their platform, and Rasa answers again.
        back = await console.post(f"/console/api/handoffs/{hid}/return")
        assert back.status == 200
        assert (await back.json())["handoff"]["state"] == "returned_to_bot"
        assert "智能助手继续为您服务" in citizen.pushed()[-1]
        answer = await citizen.say("你好")
        assert fake_rasa.received[-1]["message"] == "你好"
        assert fake_rasa.received[-1]["metadata"]["channel"] == citizen.platform
        assert any("您好，我是12345智能助手。" in t for t in answer), answer
        await ws.close()
    finally:
        await console.close()


async def test_media_goes_to_the_console_as_a_label_while_an_agent_owns_the_chat(
    citizen: Citizen, fake_rasa: FakeRasa, settings: Settings
) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(citizen.client)
    try:
        assert (await console.login(name)).status == 200
        ws = await console.ws()
        # While the bot owns the chat, a picture is answered with the text-only notice.
        assert await citizen.send_photo() == [MEDIA_NOTICE.text]
        fake_rasa.status = 500
        await citizen.say("转人工")
        opened = await next_event(ws, lambda e: e["type"] == "handoff" and e["change"] == "opened")
        hid = opened["handoff"]["id"]
        assert (await console.post(f"/console/api/handoffs/{hid}/claim")).status == 200

        # Now the agent owns it: the picture is stored and shown to the agent, the bot is silent.
        calls, pushed = len(fake_rasa.received), len(citizen.pushed())
        assert await citizen.send_photo() == []
        live = await next_event(
            ws,
            lambda e: (
                e["type"] == "message"
                and e["message"]["from"] == "citizen"
                and e["conversation"] == opened["handoff"]["conversation"]
                and e["message"]["text"] == "[图片]"
            ),
        )
        assert live["message"]["text"] == "[图片]"
        assert len(fake_rasa.received) == calls
        assert len(citizen.pushed()) == pushed
        detail = await (await console.get(f"/console/api/handoffs/{hid}")).json()
        transcript = [(m["from"], m["text"]) for m in detail["transcript"]]
        assert transcript[:2] == [("citizen", "[图片]"), ("system", MEDIA_NOTICE.text)]
        assert transcript[-1] == ("citizen", "[图片]")
        await ws.close()
    finally:
        await console.close()
