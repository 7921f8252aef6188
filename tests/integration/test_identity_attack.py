"""Issue 9: a phone number typed into a form proves nothing.

A stranger talks to 12345 through the REST channel and files a work order (through the form,
as the action server does, or through an agent's console) with a victim's mobile number. The
stranger must not become the victim: no victim's orders under "我的工单", no status of the
victim's order without the last four digits, no status pushes of the victim's order, no rating
of it; and the agent who filed for the stranger does not see the victim's orders either.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import BUS, CIPHER, DB
from bot.notifier import Notifier
from bot.settings import Settings
from store import conversations, lifecycle, work_orders
from store.categories import seed_taxonomy
from store.client import StoreClient
from tests.integration.outbox_helpers import system_messages
from tests.integration.test_console_helpers import Console, claim_by_hand, make_agent, unique

VICTIM_PHONE = "13912345678"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Hand-offs are claimed by hand, around the clock."""
    return claim_by_hand(settings)


@pytest.fixture
def store_client(gateway: TestClient) -> StoreClient:
    """The action server's own client, on the gateway's database and bus."""
    app = gateway.app
    return StoreClient(app[DB], app[BUS], app[CIPHER])


async def say(gateway: TestClient, sender: str, text: str) -> None:
    """One turn through the public REST channel."""
    resp = await gateway.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert resp.status == 200


async def sender_id(gateway: TestClient, sender: str) -> str:
    """Rasa's sender id of a REST conversation (what the action server is called with)."""
    async with gateway.app[DB].session() as s:
        return (await conversations.ensure_conversation(s, "rest", sender)).public_id


async def file_through_form(
    store_client: StoreClient, gateway: TestClient, sender: str, text: str
) -> str:
    """What the work-order form's submit action does for this REST conversation."""
    view = await store_client.create_work_order(
        sender_id=await sender_id(gateway, sender),
        idempotency_key=f"form:{sender}:{text}",
        kind="complain",
        category_code="urban",
        description=text,
        location="幸福路8号",
        contact_name="李女士",
        phone=VICTIM_PHONE,
    )
    return view.tracking_no


async def move(gateway: TestClient, tracking_no: str, *statuses: str) -> None:
    async with gateway.app[DB].session() as s:
        order = await work_orders.by_tracking_no(s, tracking_no)
        assert order is not None
        for status in statuses:
            await lifecycle.transition(s, order, status, "agent:li")


async def test_stranger_filing_with_a_victims_phone_gets_nothing_of_the_victim(
    gateway: TestClient, store_client: StoreClient
) -> None:
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
    await say(gateway, "victim", "你好")
    victims = await file_through_form(store_client, gateway, "victim", "单位拖欠工资三个月")
    await say(gateway, "stranger", "你好")
    strangers = await file_through_form(store_client, gateway, "stranger", "楼下噪音扰民")

    stranger = await sender_id(gateway, "stranger")
    mine = [o.tracking_no for o in await store_client.my_work_orders(stranger)]
    assert mine == [strangers]  # "我的工单" lists only the stranger's own order

    found = await store_client.lookup(tracking_no=victims, phone_last4=None, sender_id=stranger)
    assert found.order is None and found.needs_phone  # asked for the last 4 digits

    await move(gateway, victims, "dispatched", "in_progress", "resolved")
    notifier = Notifier(gateway.app, backoff=lambda attempts: timedelta(0))
    await notifier.deliver_pending()
    told_victim = " ".join(m.text for m in await system_messages(gateway.app[DB], "rest", "victim"))
    told_stranger = [m.text for m in await system_messages(gateway.app[DB], "rest", "stranger")]
    assert victims in told_victim or "已办结" in told_victim  # the push ran, to the victim
    assert told_stranger == []  # and not to the stranger

    rated = await store_client.rate(sender_id=stranger, tracking_no=victims, score="satisfied")
    assert rated is None
    async with gateway.app[DB].session() as s:
        order = await work_orders.by_tracking_no(s, victims)
        assert order is not None and order.status != "closed"  # not closed by the stranger
        assert [e for e in order.events if e.kind == "rating"] == []

    # The victim still has exactly their own order.
    victim = await sender_id(gateway, "victim")
    assert [o.tracking_no for o in await store_client.my_work_orders(victim)] == [victims]


async def test_agent_filing_with_a_mistyped_phone_merges_no_strangers(
    gateway: TestClient, fake_rasa, settings: Settings, store_client: StoreClient
) -> None:
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
    await say(gateway, "victim2", "你好")
    victims = await file_through_form(store_client, gateway, "victim2", "小区垃圾无人清运")

    fake_rasa.status = 500  # Rasa down: the stranger's conversation goes to a human
    await say(gateway, "stranger2", "转人工")
    fake_rasa.status = 200
    name = unique("agent")
    await make_agent(settings.database_url, name)
    agent = Console(gateway)
    try:
        assert (await agent.login(name)).status == 200
        queue = await (await agent.get("/console/api/handoffs")).json()
        hid = queue["handoffs"][0]["id"]
        assert (await agent.post(f"/console/api/handoffs/{hid}/claim")).status == 200
        form = {
            "kind": "report",
            "description": "路灯不亮",
            "phone": VICTIM_PHONE,  # the agent typed the victim's number by mistake
        }
        created = await agent.post(f"/console/api/handoffs/{hid}/work-orders", form)
        assert created.status == 201
        strangers = (await created.json())["work_order"]["tracking_no"]
        detail = await (await agent.get(f"/console/api/handoffs/{hid}")).json()
        assert [o["tracking_no"] for o in detail["work_orders"]] == [strangers]
    finally:
        await agent.close()
    stranger = await sender_id(gateway, "stranger2")
    mine = [o.tracking_no for o in await store_client.my_work_orders(stranger)]
    assert victims not in mine and mine == [strangers]
