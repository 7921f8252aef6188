"""The chat widget as a citizen uses it, in headless Chromium against a real gateway."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.channels.web import SOCKETS
from bot.keys import ROUTER
from bot.messages import Reply
from store.models import ChannelIdentity, Conversation

pytestmark = pytest.mark.browser

OPEN = "打开12345智能助手在线咨询"
TIMEOUT = 5000


class Watch:
    """Dialogs and CSP violations a page produced (there must be none)."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.console_errors: list[str] = []


async def new_page(browser, *, width: int = 1280, height: int = 800) -> tuple[Any, Any, Watch]:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT)
    watch = Watch()

    async def on_dialog(dialog) -> None:
        watch.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on(
        "console",
        lambda m: watch.console_errors.append(m.text) if m.type == "error" else None,
    )
    return context, page, watch


def bot_bubbles(page):
    return page.locator(".h-row.h-bot .h-text")


async def open_widget(page) -> None:
    await page.get_by_role("button", name=OPEN).click()
    await page.get_by_role("dialog", name="12345 智能助手").wait_for()


async def send(page, text: str) -> None:
    box = page.get_by_role("textbox", name="输入您的问题")
    await box.fill(text)
    await box.press("Enter")


async def test_chat_buttons_history_and_screenshot(gateway, browser, screenshots) -> None:
    context, page, watch = await new_page(browser)
    await page.goto(str(gateway.make_url("/")))
    await open_widget(page)
    # A new session opens with the assistant's own welcome and its quick replies.
    welcome = bot_bubbles(page).filter(has_text="您好，我是12345智能助手。")
    await welcome.first.wait_for()
    quick = page.locator(".h-quick-btn")
    await quick.first.wait_for()
    assert await quick.all_inner_texts() == ["社保", "转人工"]
    await send(page, "你好")
    await welcome.nth(1).wait_for()
    assert await quick.all_inner_texts() == ["社保", "转人工"]

    await page.get_by_role("button", name="社保").click()
    await bot_bubbles(page).filter(has_text="收到：/faq_topic_si").wait_for()
    citizen = await page.locator(".h-row.h-citizen .h-text").all_inner_texts()
    assert citizen == ["你好", "社保"]  # the title, not the payload
    assert await quick.count() == 0  # quick replies belong to the last message only
    await page.screenshot(path=str(screenshots / "widget.png"))

    await page.reload()
    await open_widget(page)
    await bot_bubbles(page).filter(has_text="收到：/faq_topic_si").wait_for()
    texts = await page.locator(".h-row .h-text").all_inner_texts()
    assert texts == [
        "您好，我是12345智能助手。",
        "你好",
        "您好，我是12345智能助手。",
        "社保",
        "收到：/faq_topic_si",
    ]
    assert watch.dialogs == []
    assert not [e for e in watch.console_errors if "Content Security Policy" in e]
    await context.close()


async def test_typed_markup_stays_text(gateway, browser) -> None:
    context, page, watch = await new_page(browser)
    await page.goto(str(gateway.make_url("/")))
    await open_widget(page)
    await send(page, "<script>alert(1)</script><img src=x onerror=alert(2)>")
    await bot_bubbles(page).filter(has_text="收到：<script>").wait_for()
    mine = page.locator(".h-row.h-citizen .h-text").last
    assert await mine.inner_text() == "<script>alert(1)</script><img src=x onerror=alert(2)>"
    assert await page.locator(".h-messages script, .h-messages img").count() == 0
    await page.wait_for_timeout(300)
    assert watch.dialogs == []
    await context.close()


async def test_large_font_is_remembered(gateway, browser, screenshots) -> None:
    context, page, _ = await new_page(browser)
    await page.goto(str(gateway.make_url("/")))
    await open_widget(page)
    await send(page, "你好")
    bubble = bot_bubbles(page).last
    await bubble.wait_for()

    async def font_px() -> float:
        size = await bubble.evaluate("e => getComputedStyle(e).fontSize")
        return float(size.removesuffix("px"))

    normal = await font_px()
    toggle = page.get_by_role("button", name="大字模式（放大字号、提高对比度）")
    await toggle.click()
    assert await toggle.get_attribute("aria-pressed") == "true"
    assert await font_px() >= normal * 1.25

    await page.reload()
    await open_widget(page)
    await bubble.wait_for()
    assert await font_px() >= normal * 1.25
    await page.screenshot(path=str(screenshots / "widget-large.png"))
    await context.close()


async def test_phone_screen_gets_a_full_screen_panel(gateway, browser, screenshots) -> None:
    context, page, _ = await new_page(browser, width=360, height=740)
    await page.goto(str(gateway.make_url("/")))
    await open_widget(page)
    await send(page, "你好")
    await page.locator(".h-quick-btn").first.wait_for()
    box = await page.get_by_role("dialog", name="12345 智能助手").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 360, "height": 740}
    send_box = await page.get_by_role("button", name="发送").bounding_box()
    assert send_box["x"] + send_box["width"] <= 360
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 360
    await page.screenshot(path=str(screenshots / "widget-phone.png"))
    await context.close()


async def test_keyboard_and_ime(gateway, browser, fake_rasa) -> None:
    context, page, _ = await new_page(browser)
    await page.goto(str(gateway.make_url("/")))
    bubble = page.get_by_role("button", name=OPEN)
    await bubble.focus()
    await page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="输入您的问题")
    await box.wait_for()
    assert await box.evaluate("e => e.getRootNode().activeElement === e")

    await box.fill("shen")
    # Enter that picks a 拼音 candidate must not send.
    await box.evaluate(
        """e => e.dispatchEvent(new KeyboardEvent('keydown',
            {key: 'Enter', isComposing: true, bubbles: true, cancelable: true}))"""
    )
    await page.wait_for_timeout(200)
    assert await box.input_value() == "shen"
    assert await page.locator(".h-row.h-citizen").count() == 0

    await page.keyboard.press("Escape")
    assert await bubble.get_attribute("aria-expanded") == "false"
    assert await bubble.evaluate("e => e.getRootNode().activeElement === e")
    # Only the welcome of the new session reached Rasa, nothing the citizen typed.
    assert all(r["message"] == "/greet" for r in fake_rasa.received)
    await context.close()


async def test_agent_reply_and_reconnect(gateway, browser, db) -> None:
    context, page, _ = await new_page(browser)
    await page.goto(str(gateway.make_url("/")))
    await open_widget(page)
    await send(page, "转人工")
    # Not the first bot bubble: that may be the widget's own static welcome, shown before the
    # gateway's session frame (and the token the widget stores from it) has arrived.
    await bot_bubbles(page).filter(has_text="收到：转人工").wait_for()
    await page.wait_for_function("window.localStorage.getItem('h12345.session') !== null")

    token = await page.evaluate("localStorage.getItem('h12345.session')")
    digest = hashlib.sha256(token.encode()).hexdigest()
    async with db.session() as s:
        conv = (
            await s.execute(
                select(Conversation.id)
                .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
                .where(ChannelIdentity.external_id == digest)
            )
        ).scalar_one()
    await gateway.app[ROUTER].push(conv, [Reply("您好，我是人工客服小李。", sender="agent")])
    agent = page.locator(".h-row.h-agent")
    await agent.filter(has_text="您好，我是人工客服小李。").wait_for()
    assert await agent.locator(".h-tag").inner_text() == "人工客服"

    # The gateway drops every socket: the widget says so, comes back, and keeps working.
    for client in gateway.app[SOCKETS].all_clients():
        await client.ws.close()
    notice = page.get_by_role("status").filter(has_text="正在重新连接")
    await notice.wait_for()
    await notice.wait_for(state="hidden", timeout=10_000)
    await send(page, "还在吗")
    await bot_bubbles(page).filter(has_text="收到：还在吗").wait_for()
    await context.close()


async def test_embedded_on_another_site(gateway, browser, screenshots) -> None:
    widget = str(gateway.make_url("/static/widget.js"))
    html = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
        <title>区政府网站</title><script src="{widget}" defer></script></head>
        <body><h1>某区人民政府</h1></body></html>"""

    async def page_handler(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    site = web.Application()
    site.router.add_get("/", page_handler)
    server = TestServer(site, host="127.0.0.1")
    await server.start_server()
    try:
        context, page, _ = await new_page(browser)
        await page.goto(str(server.make_url("/")))
        await page.get_by_role("button", name=OPEN).wait_for()
        await page.screenshot(path=str(screenshots / "widget-launcher.png"))
        await open_widget(page)
        await send(page, "你好")
        # The new session's welcome, then the answer to 你好.
        await bot_bubbles(page).filter(has_text="您好，我是12345智能助手。").nth(1).wait_for()
        await context.close()
    finally:
        await server.close()
