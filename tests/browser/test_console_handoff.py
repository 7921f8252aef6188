"""An agent in the console and a citizen in the widget, both in headless Chromium: the citizen
asks for a human, the agent sees it appear without reloading, claims, replies, records progress
on the citizen's work order, hands back to the bot, and the bot answers the citizen's next
question."""

from __future__ import annotations

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from bot.keys import CIPHER, DB
from store import lifecycle, work_orders
from store.categories import seed_taxonomy
from store.models import ChannelIdentity, Conversation
from tests.browser.test_widget import new_page, open_widget, send
from tests.integration.test_console_helpers import PASSWORD, make_agent, unique

pytestmark = pytest.mark.browser
EVIL = "转人工 <script>window.__xss=1</script>"


@pytest.fixture
def settings(settings):
    """The agent claims by hand; the service is open around the clock."""
    return settings.model_copy(
        update={"console_auto_assign": False, "service_hours": "mon-sun 00:00-24:00"}
    )


async def _dispatched_order(gateway) -> str:
    """The widget citizen's earlier work order, already dispatched by a supervisor."""
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
        conv = (
            await s.execute(
                select(Conversation)
                .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
                .where(ChannelIdentity.channel == "web")
            )
        ).scalar_one()
        order = await work_orders.create_work_order(
            s,
            gateway.app[CIPHER],
            conversation=conv,
            kind="report",
            category_code="urban",
            description="小区门口路灯坏了",
            location=None,
            contact_name=None,
            phone="13812345678",
            actor="bot",
            idempotency_key=None,
        )
        await lifecycle.transition(s, order, "dispatched", "agent:boss")
        return order.tracking_no


async def test_agent_sees_claims_replies_and_returns_to_bot(
    gateway, fake_rasa, browser, settings, screenshots
) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    agent_ctx, agent, agent_watch = await new_page(browser, width=1400, height=860)
    citizen_ctx, citizen, citizen_watch = await new_page(browser)
    try:
        # The agent signs in.
        await agent.goto(str(gateway.make_url("/console/")))
        await agent.wait_for_url("**/console/login")
        await agent.get_by_label("用户名").fill(name)
        await agent.get_by_label("密码").fill(PASSWORD)
        await agent.get_by_role("button", name="登录").click()
        await agent.wait_for_url("**/console/")
        await agent.locator("#live-label", has_text="在线").wait_for()
        assert await agent.title() == "12345 坐席"

        # A citizen asks for a human while the bot is down.
        await citizen.goto(str(gateway.make_url("/")))
        await open_widget(citizen)
        fake_rasa.status = 500
        await send(citizen, EVIL)
        await citizen.get_by_text("正在为您转接人工客服").first.wait_for()

        # It appears in the console without a reload, with an alert in the title.
        item = agent.locator(".queue-item", has_text="<script>")
        await item.wait_for()
        assert await agent.title() == "(1) 12345 坐席"
        await item.click()
        first = agent.locator("#transcript .msg.from-citizen .msg-text").first
        await first.wait_for()
        assert await first.inner_text() == EVIL  # characters, not markup
        assert await agent.evaluate("window.__xss") is None

        # Claim and reply; the citizen sees both.
        await agent.get_by_role("button", name="接入", exact=True).click()
        await agent.locator("#conv-state", has_text="处理中").wait_for()
        await citizen.get_by_text("已接入").first.wait_for()
        await agent.locator("#reply-text").fill("您好，我是人工客服，请问您遇到了什么问题？")
        await agent.get_by_role("button", name="发送").click()
        await citizen.get_by_text("您好，我是人工客服，请问您遇到了什么问题？").wait_for()

        # The citizen answers; it reaches the console live, and Rasa hears nothing.
        fake_rasa.status = 200
        calls = len(fake_rasa.received)
        await send(citizen, "小区门口路灯坏了，电话13812345678")
        live = agent.locator("#transcript .msg.from-citizen", has_text="小区门口路灯坏了")
        await live.wait_for()
        assert "138****5678" in await live.inner_text()
        assert len(fake_rasa.received) == calls
        await agent.locator("#as-note").check()
        await agent.locator("#reply-text").fill("市民反映路灯故障，已核实地址")
        await agent.get_by_role("button", name="发送").click()
        await agent.locator("#transcript .msg.internal").wait_for()
        await agent.locator("#as-note").uncheck()

        # The citizen's dispatched work order: the agent records that work began; the citizen
        # is told by the notifier.
        number = await _dispatched_order(gateway)
        await agent.locator(".queue-item.selected").click()
        card = agent.locator("#orders .order", has_text=number)
        await card.get_by_text("办理 / 更新工单").click()
        await card.get_by_label("变更状态").select_option("in_progress")
        await card.get_by_role("button", name="更新状态").click()
        await card.locator(".state", has_text="办理中").wait_for()
        await citizen.get_by_text(f"您的工单 {number} 正在办理中。").wait_for()
        await agent.screenshot(path=str(screenshots / "console.png"))

        # Back to the bot; the bot answers the next question.
        await agent.get_by_role("button", name="转回机器人").click()
        await citizen.get_by_text("智能助手继续为您服务").wait_for()
        greetings = citizen.get_by_text("您好，我是12345智能助手。")
        before = await greetings.count()  # the widget's welcome greeted already
        await send(citizen, "你好")
        await expect(greetings).to_have_count(before + 1)
        assert fake_rasa.received[-1]["message"] == "你好"
        assert await citizen.get_by_text("市民反映路灯故障").count() == 0  # notes stay inside
        assert agent_watch.dialogs == [] and agent_watch.console_errors == []
        assert citizen_watch.dialogs == []
    finally:
        await agent_ctx.close()
        await citizen_ctx.close()
