"""An admin in the console's 坐席管理 page, in headless Chromium: deactivates an agent whose
open console is sent to the login page at once, and resets another one's password. Names are
shown as text, never as markup."""

from __future__ import annotations

import pytest

from store import agents
from store.db import Database
from tests.browser.test_widget import TIMEOUT
from tests.integration.test_console_helpers import PASSWORD, make_agent, unique

pytestmark = pytest.mark.browser
EVIL_NAME = '<img src=x onerror="window.__xss=1">'


async def _page(browser):
    context = await browser.new_context(viewport={"width": 1400, "height": 860}, locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.on("dialog", lambda dialog: dialog.accept())  # the "确定停用？" confirmation
    return context, page


async def _sign_in(page, gateway, name: str) -> None:
    await page.goto(str(gateway.make_url("/console/login")))
    await page.get_by_label("用户名").fill(name)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url("**/console/")
    await page.locator("#live-label", has_text="在线").wait_for()


async def test_admin_deactivates_an_agent_and_resets_a_password(
    gateway, browser, settings, screenshots
) -> None:
    admin_name, agent_name = unique("admin"), unique("agent")
    await make_agent(settings.database_url, admin_name, "admin")
    db = Database(settings.database_url)
    async with db.session() as session:
        await agents.create_agent(session, agent_name, PASSWORD, display_name=EVIL_NAME)
    await db.close()
    admin_ctx, admin = await _page(browser)
    agent_ctx, agent = await _page(browser)
    try:
        await _sign_in(agent, gateway, agent_name)
        await _sign_in(admin, gateway, admin_name)

        await admin.get_by_role("button", name="坐席管理").click()
        row = admin.locator("#agent-admin li", has_text=agent_name)
        await row.locator("strong", has_text=EVIL_NAME).wait_for()  # the name, as text
        assert await admin.evaluate("window.__xss") is None

        await row.get_by_role("button", name="停用").click()
        await (
            admin.locator("#agent-admin li", has_text=agent_name)
            .locator(".state", has_text="已停用")
            .wait_for()
        )
        await agent.wait_for_url("**/console/login")  # its socket closed with 4401

        row = admin.locator("#agent-admin li", has_text=agent_name)
        await row.get_by_label("新密码").fill("a brand new password 7")
        await row.get_by_role("button", name="重置密码").click()
        await admin.locator("#agents-msg", has_text="已重置").wait_for()
        await admin.screenshot(path=str(screenshots / "console-agents.png"))
        assert await admin.evaluate("window.__xss") is None
    finally:
        await admin_ctx.close()
        await agent_ctx.close()
