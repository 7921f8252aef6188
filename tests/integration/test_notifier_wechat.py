"""Work-order status pushes to a WeChat follower, through the running notifier, against the fake
api.weixin.qq.com: customer-service text inside the 48-hour window, the status template outside
it, and a notice recorded as not delivered when no template is configured (while the same
citizen's other channel still gets it)."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import create_app
from bot.keys import CIPHER
from bot.settings import Settings
from store import work_orders
from store.db import Database
from store.models import Outbox
from tests.builders import file_order, linked_citizen, move
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.integration.outbox_helpers import system_messages

TOKEN = "notifier-wechat-token"
SECRET = "notifier-wechat-secret"
TEMPLATE_ID = "Ngq-status-template-0001"
PUBLIC = "https://12345.example.gov.cn"
CUSTOM_SEND = "/cgi-bin/message/custom/send"
TIME = re.compile(r"^\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}$")


@pytest.fixture
async def wechat_api() -> AsyncIterator[FakeWeChatAPI]:
    fake = FakeWeChatAPI("wx" + secrets.token_hex(8), SECRET)
    fake.add_template(TEMPLATE_ID)
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test changes (parametrize indirectly)."""
    return {}


@pytest.fixture
async def gateway_wx(
    settings: Settings, db: Database, wechat_api: FakeWeChatAPI, overrides: dict[str, Any]
) -> AsyncIterator[TestClient]:
    """The gateway (notifier running) with WeChat's server API pointed at the fake."""
    update = {
        "wechat_token": SecretStr(TOKEN),
        "wechat_app_id": wechat_api.app_id,
        "wechat_app_secret": SecretStr(SECRET),
        "wechat_api_base": wechat_api.url,
        "wechat_template_status_id": TEMPLATE_ID,
        "public_base_url": PUBLIC,
        **overrides,
    }
    app = create_app(settings.model_copy(update=update))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def file_wechat_order(
    client: TestClient, db: Database, openid: str, web_id: str | None = None
) -> tuple[int, str]:
    """A work order filed from WeChat by `openid`; `web_id` links a widget session to them."""
    linked = [("web", web_id)] if web_id is not None else []
    async with db.session() as s:
        conv = await linked_citizen(s, "wechat", openid, *linked)
        order = await file_order(s, client.app[CIPHER], conv)
        return order.id, order.tracking_no


async def delivered(db: Database, order_id: int, what: str, within: float = 8.0) -> Outbox:
    """The outbox row of one status change, once the notifier has handled it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with db.session() as s:
            rows = (await s.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
        for row in rows:
            p = row.payload
            if p.get("work_order_id") == order_id and p.get("what") == what and row.delivered_at:
                return row
        if loop.time() > deadline:
            raise TimeoutError(f"status {what} of order {order_id} was not delivered")
        await asyncio.sleep(0.1)


async def test_inside_the_window_the_status_is_a_customer_service_text(
    gateway_wx: TestClient, db: Database, wechat_api: FakeWeChatAPI
) -> None:
    openid = "o" + secrets.token_hex(12)
    order_id, no = await file_wechat_order(gateway_wx, db, openid)
    await move(db, order_id, "dispatched")
    row = await delivered(db, order_id, "dispatched")
    assert row.last_error is None
    [(to, text)] = wechat_api.sent_texts
    assert to == openid and text.startswith(f"您的工单 {no} 已派至")
    assert wechat_api.sent_templates == []


async def test_outside_the_window_the_status_goes_out_as_the_template(
    gateway_wx: TestClient, db: Database, wechat_api: FakeWeChatAPI
) -> None:
    openid = "o" + secrets.token_hex(12)
    wechat_api.close_window(openid)
    order_id, no = await file_wechat_order(gateway_wx, db, openid)
    await move(db, order_id, "dispatched")
    row = await delivered(db, order_id, "dispatched")
    assert row.last_error is None
    refused = wechat_api.calls_to(CUSTOM_SEND)
    assert [c["accepted"] for c in refused] == [False]  # WeChat said 45015 first
    [body] = wechat_api.sent_templates
    data = {k: v["value"] for k, v in body["data"].items()}
    head = {k: v for k, v in body.items() if k != "data"}
    assert head == {
        "touser": openid,
        "template_id": TEMPLATE_ID,
        "url": f"{PUBLIC}/lookup?no={no}",
    }
    assert data["keyword1"] == no
    assert data["keyword2"] == "已派单"
    assert TIME.match(data["keyword3"])
    assert set(data) == {"first", "keyword1", "keyword2", "keyword3", "remark"}
    assert all(len(v) <= 20 and "\n" not in v for k, v in data.items() if k != "keyword1")
    [stored] = await system_messages(db, "wechat", openid)
    assert stored.status == "processed"

    # 办结 with its rating buttons: also a template, and the order still moves on to 回访.
    await move(db, order_id, "in_progress")
    await move(db, order_id, "resolved")
    await delivered(db, order_id, "resolved")
    statuses = [t["data"]["keyword2"]["value"] for t in wechat_api.sent_templates]
    assert statuses == ["已派单", "办理中", "已办结"]
    async with db.session() as s:
        assert (await work_orders.by_id(s, order_id)).status == "callback"


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "wechat_template_status_fields": "character_string1, phrase2, time3",
            "public_base_url": "http://127.0.0.1:8000",
        }
    ],
)
async def test_template_field_names_are_a_setting_and_no_loopback_link_is_sent(
    gateway_wx: TestClient, db: Database, wechat_api: FakeWeChatAPI
) -> None:
    openid = "o" + secrets.token_hex(12)
    wechat_api.close_window(openid)
    order_id, no = await file_wechat_order(gateway_wx, db, openid)
    await move(db, order_id, "dispatched")
    await delivered(db, order_id, "dispatched")
    [body] = wechat_api.sent_templates
    assert "url" not in body
    assert set(body["data"]) == {"first", "character_string1", "phrase2", "time3", "remark"}
    assert body["data"]["character_string1"] == {"value": no}


@pytest.mark.parametrize("overrides", [{"wechat_template_status_id": ""}])
async def test_without_a_template_the_notice_is_recorded_as_not_delivered(
    gateway_wx: TestClient,
    db: Database,
    wechat_api: FakeWeChatAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    openid = "o" + secrets.token_hex(12)
    web_id = secrets.token_hex(32)
    wechat_api.close_window(openid)
    order_id, no = await file_wechat_order(gateway_wx, db, openid, web_id=web_id)
    with caplog.at_level(logging.INFO):
        await move(db, order_id, "dispatched")
        row = await delivered(db, order_id, "dispatched")
    # The row is done: the widget session got it, WeChat's refusal is written down.
    assert row.attempts == 1
    assert re.fullmatch(r"not delivered on: wechat identity \d+", row.last_error)
    [on_web] = await system_messages(db, "web", web_id)
    assert on_web.text.startswith(f"您的工单 {no} 已派至") and on_web.status == "processed"
    [on_wechat] = await system_messages(db, "wechat", openid)
    assert on_wechat.status == "failed"
    assert "no status template" in on_wechat.payload["undelivered"]
    assert wechat_api.sent_texts == [] and wechat_api.sent_templates == []
    assert "WECHAT_TEMPLATE_STATUS_ID is unset" in caplog.text
    assert f"{openid[:4]}****{openid[-4:]}" in caplog.text
    assert openid not in caplog.text

    # The next change is handled the same way: nothing is stuck behind the refused one.
    await move(db, order_id, "in_progress")
    await delivered(db, order_id, "in_progress")
    assert [m.text for m in await system_messages(db, "web", web_id)][-1] == (
        f"您的工单 {no} 正在办理中。"
    )
    await asyncio.sleep(0.3)
    assert len(wechat_api.calls_to(CUSTOM_SEND)) == 2  # each change tried once, not retried
