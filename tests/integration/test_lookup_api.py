"""The public lookup API answers with what the lookup page shows and nothing more."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.keys import CIPHER, DB
from store import work_orders
from tests.builders import file_order

PAGE_FIELDS = {
    "tracking_no",
    "status_label",
    "category_name",
    "department_name",
    "created_at",
    "response_due",
    "result_due",
    "phone_masked",
    "delay_reason",
    "supervision",
    "timeline",
}


async def test_lookup_returns_only_what_the_page_shows(gateway: TestClient) -> None:
    async with gateway.app[DB].session() as s:
        order = await file_order(
            s,
            gateway.app[CIPHER],
            None,
            kind="complain",
            description="楼下烧烤店油烟太大，我是3栋的李建国，身份证11010119900307123X",
            location="和平里小区3栋",
            contact_name="李建国",
        )
        number = order.tracking_no
        await work_orders.set_delay_reason(s, order, "需联系业主13912345678现场核实", "agent:a")
    resp = await gateway.get(f"/api/v1/work-orders/{number}?phone_last4=5678")
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == PAGE_FIELDS
    raw = await resp.text()
    for private in ("烧烤店", "和平里", "李建国", "11010119900307123X", "13912345678"):
        assert private not in raw
    assert body["phone_masked"] == "139****5678"
    assert body["delay_reason"] == "需联系业主139****5678现场核实"
    assert {"at", "label", "note"} == set(body["timeline"][0])
