"""Unlinking channels in the console, in headless Chromium: a supervisor sees the channels linked
to a citizen who asked for a human (names as text, platform ids masked), unlinks one after a
confirmation and sees the result; an agent on the same conversation sees no such control."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from bot.keys import DB
from store import conversations, handoffs, links
from tests.browser.test_widget import new_page
from tests.integration.test_console_helpers import PASSWORD, make_agent, unique

pytestmark = pytest.mark.browser
EVIL = "<img src=x onerror=window.__xss=1>李女士"


@pytest.fixture
def settings(settings):
    """Hand-offs wait to be claimed; the service is open around the clock."""
    return settings.model_copy(
        update={"console_auto_assign": False, "service_hours": "mon-sun 00:00-24:00"}
    )


async def linked_citizen_asking_for_help(gateway) -> None:
    """A WeChat user linked to a REST identity (one citizen) and a hand-off from WeChat."""
    async with gateway.app[DB].session() as s:
        wechat = await conversations.ensure_conversation(s, "wechat", "oWx123456789xyz", EVIL)
        rest = await conversations.ensure_conversation(s, "rest", "crm-000042", "热线小程序")
        citizen = (await conversations.identity_of(s, wechat)).citizen_id
        await links.link_identity(s, rest.channel_identity_id, citizen)
        await handoffs.request(s, wechat, "request_human")


async def sign_in(page, gateway, username: str) -> None:
    await page.goto(str(gateway.make_url("/console/")))
    await page.wait_for_url("**/console/login")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url("**/console/")
    await page.locator("#live-label", has_text="在线").wait_for()


async def open_the_hand_off(page) -> None:
    await page.locator(".queue-item", has_text="李女士").click()
    await page.locator("#conv-state", has_text="待接入").wait_for()


async def test_supervisor_unlinks_and_an_agent_sees_no_control(
    gateway, browser, settings, screenshots
) -> None:
    await linked_citizen_asking_for_help(gateway)
    boss_name, agent_name = unique("boss"), unique("agent")
    await make_agent(settings.database_url, boss_name, "supervisor")
    await make_agent(settings.database_url, agent_name)

    agent_ctx, agent, agent_watch = await new_page(browser, width=1400, height=860)
    try:
        await sign_in(agent, gateway, agent_name)
        await open_the_hand_off(agent)
        await expect(agent.locator("#identities-box")).to_be_hidden()
        await expect(agent.get_by_role("button", name="解除关联")).to_have_count(0)
        assert agent_watch.console_errors == []
    finally:
        await agent_ctx.close()

    boss_ctx, boss, boss_watch = await new_page(browser, width=1400, height=860)
    try:
        await sign_in(boss, gateway, boss_name)
        await open_the_hand_off(boss)
        box = boss.locator("#identities-box")
        rows = box.locator(".identity")
        await expect(rows).to_have_count(2)
        wechat_row = rows.filter(has_text="oWx****xyz")
        assert await wechat_row.locator(".identity-name").inner_text() == EVIL  # text, not markup
        assert await boss.evaluate("window.__xss") is None
        await expect(wechat_row.locator(".tag")).to_have_text("当前会话")
        rest_row = rows.filter(has_text="crm****042")
        await expect(rest_row.locator(".identity-name")).to_have_text("热线小程序")
        assert "crm-000042" not in await box.inner_text()  # the platform id stays masked

        # Cancelling the confirmation changes nothing.
        await rest_row.get_by_role("button", name="解除关联").click()
        dialog = boss.get_by_role("dialog", name="解除关联")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("crm****042")
        await dialog.get_by_role("button", name="取消").click()
        await expect(dialog).to_be_hidden()
        await expect(rows).to_have_count(2)

        await rest_row.get_by_role("button", name="解除关联").click()
        await dialog.get_by_role("button", name="确认解除").click()
        await expect(boss.locator("#identities-msg")).to_contain_text("已解除关联")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("oWx****xyz")
        await expect(box.get_by_role("button", name="解除关联")).to_have_count(0)  # alone now
        await boss.screenshot(path=str(screenshots / "console_identities.png"))
        assert boss_watch.dialogs == [] and boss_watch.console_errors == []
    finally:
        await boss_ctx.close()

    async with gateway.app[DB].session() as s:
        wechat = await conversations.ensure_conversation(s, "wechat", "oWx123456789xyz")
        citizen = (await conversations.identity_of(s, wechat)).citizen_id
        assert await links.linked_channels(s, citizen) == ["wechat"]
