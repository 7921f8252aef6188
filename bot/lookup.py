"""Work-order lookup on the web: `GET /api/v1/work-orders/{tracking_no}?phone_last4=NNNN`
and a small page at `/lookup`. Same rules as in chat (store/lookup.py), limited per client
address (bot/client_address.py: forwarded headers only from TRUSTED_PROXIES)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.client_address import limit_subject
from bot.keys import BUS, CIPHER, DB
from store.lookup import lookup
from store.masking import mask_text
from store.views import WorkOrderView, view_of

STATIC = Path(__file__).parent / "static"
# What the lookup page (static/lookup.js) shows, and nothing more: no description, location or
# contact name for whoever holds a tracking number and four digits.
PUBLIC_FIELDS = (
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
)
NOT_FOUND = "未找到匹配的工单，请核对工单号和手机号后4位。"
REFUSED = "查询失败次数过多，请15分钟后再试，或拨打12345热线。"
# The per-number limit (up to 24 h): a true wait, and nothing about whether the number exists.
NUMBER_CLOSED = (
    "该工单号的查询尝试次数过多，为保护信息安全，暂停凭手机号后4位查询，请稍后再试。"
    "您也可以在提交工单时使用的渠道查询，或拨打12345热线。"
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
)


async def get_work_order(request: web.Request) -> web.Response:
    """The citizen's view of one order, or one uniform answer when it cannot be shown."""
    last4 = request.query.get("phone_last4", "")
    if not re.fullmatch(r"\d{4}", last4):
        return web.json_response({"error": "请填写下单时所留手机号的后4位数字。"}, status=400)
    async with request.app[DB].session() as s:
        outcome = await lookup(
            s,
            request.app[BUS],
            request.app[CIPHER],
            raw_tracking_no=request.match_info["tracking_no"],
            phone_last4=last4,
            requester_keys=[limit_subject(request)],
        )
        if outcome.malformed:
            return web.json_response(
                {"error": "工单号格式不正确，请核对（例如 12345-20261121-7KQ4M9X2A）。"}, status=400
            )
        if outcome.refused:
            refusal = NUMBER_CLOSED if outcome.number_closed else REFUSED
            return web.json_response({"error": refusal}, status=429)
        if outcome.order is None:
            return web.json_response({"error": NOT_FOUND}, status=404)
        view = view_of(outcome.order, request.app[CIPHER])
    return web.json_response(public_json(view), headers={"Cache-Control": "no-store"})


def public_json(view: WorkOrderView) -> dict[str, Any]:
    """The fields of PUBLIC_FIELDS, with numbers in free text (delay reason, notes) masked."""
    data = view.to_json()
    shown = {key: data[key] for key in PUBLIC_FIELDS}
    if shown["delay_reason"]:
        shown["delay_reason"] = mask_text(shown["delay_reason"])
    shown["timeline"] = [
        {**item, "note": mask_text(item["note"]) if item["note"] else None}
        for item in shown["timeline"]
    ]
    return shown


async def page(request: web.Request) -> web.FileResponse:
    """The lookup page (no inline script; text is rendered with textContent)."""
    return web.FileResponse(
        STATIC / "lookup.html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
    )


async def script(request: web.Request) -> web.FileResponse:
    """The lookup page's script."""
    return web.FileResponse(STATIC / "lookup.js")


async def stylesheet(request: web.Request) -> web.FileResponse:
    """The lookup page's stylesheet."""
    return web.FileResponse(STATIC / "lookup.css")


def setup(app: web.Application) -> None:
    """Register the lookup API and page."""
    app.router.add_get("/api/v1/work-orders/{tracking_no}", get_work_order)
    app.router.add_get("/lookup", page)
    app.router.add_get("/lookup.js", script)
    app.router.add_get("/lookup.css", stylesheet)
