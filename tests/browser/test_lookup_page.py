"""The lookup page a WeChat status template links to: the tracking number is filled in from
the link, the citizen only types the phone's last 4 digits, and markup in the link stays text."""

from __future__ import annotations

from urllib.parse import quote

from tests.browser.test_widget import new_page


async def test_link_from_a_status_notice_fills_in_the_tracking_number(gateway, browser) -> None:
    context, page, watch = await new_page(browser, width=390, height=800)
    try:
        number = "12345-20261121-7KQ4M9X2"
        await page.goto(str(gateway.make_url(f"/lookup?no={number}")))
        assert await page.locator("#tracking-no").input_value() == number
        assert await page.evaluate("document.activeElement.id") == "phone-last4"

        hostile = '<img src=x onerror="alert(1)">'
        await page.goto(str(gateway.make_url(f"/lookup?no={quote(hostile)}")))
        assert await page.locator("#tracking-no").input_value() == hostile
        assert await page.locator("img").count() == 0
        assert watch.dialogs == [] and watch.console_errors == []
    finally:
        await context.close()
