"""The supervisor board: open work orders with their deadlines, 督办 flags and delay reasons,
the analytics of a window of days (hand-offs per day, medians, outcomes, satisfaction), and
the status notices that did not reach a citizen's channel."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from bot.console.auth import error, requires
from bot.console.orders import console_order
from bot.keys import DB, SETTINGS
from bot.notifier import NOTICE_LABELS
from store import analytics, outbox, work_orders
from store.models import utcnow

MAX_DAYS = 90


def _tz(request: web.Request) -> ZoneInfo:
    try:
        return ZoneInfo(request.app[SETTINGS].timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


@requires("supervisor")
async def open_work_orders(request: web.Request) -> web.Response:
    """`GET /console/api/work-orders[?overdue=1]` → open orders, 督办 first then by result
    deadline, each with response/result deadlines, overdue flags and delay reason."""
    only_overdue = request.query.get("overdue") in ("1", "true")
    async with request.app[DB].session() as s:
        orders = await work_orders.open_orders(s)
        items = [console_order(o, request, "supervisor") for o in orders]
    if only_overdue:
        items = [
            i for i in items if i["supervision"] or i["result_overdue"] or i["response_overdue"]
        ]
    return web.json_response({"work_orders": items, "now": utcnow().isoformat()})


@requires("supervisor")
async def analytics_report(request: web.Request) -> web.Response:
    """`GET /console/api/analytics?days=7` → the last `days` local days up to now: hand-offs
    per day, outcomes, median time to hand-off / wait / handling (seconds), ratings and the
    satisfaction rate, work-order counts."""
    try:
        days = int(request.query.get("days", "7"))
    except ValueError:
        return error(400, "days 参数错误")
    if not 1 <= days <= MAX_DAYS:
        return error(400, f"days 应在1到{MAX_DAYS}之间")
    tz = _tz(request)
    now = utcnow()
    first_day = now.astimezone(tz).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, time(0), tzinfo=tz)
    async with request.app[DB].session() as s:
        data = await analytics.report(s, since, now, tz)
    return web.json_response(data)


@requires("supervisor")
async def undelivered_notices(request: web.Request) -> web.Response:
    """`GET /console/api/undelivered-notices` → status notices a citizen's channel has not
    taken, newest first: tracking number, what changed, channel, the platform's reason, and
    whether the notifier is still `retrying`, has `given_up` or the channel `refused` it."""
    async with request.app[DB].session() as s:
        notices = await outbox.undelivered_notices(s)
    items = [
        {
            "tracking_no": n.tracking_no,
            "what": n.what,
            "label": NOTICE_LABELS.get(n.what, n.what),
            "channel": n.channel,
            "reason": n.reason,
            "state": n.state,
            "written_at": n.written_at.isoformat(),
            "attempts": n.attempts,
        }
        for n in notices
    ]
    return web.json_response({"notices": items})


def routes() -> list[web.RouteDef]:
    """The supervisor board's routes."""
    return [
        web.get("/console/api/work-orders", open_work_orders),
        web.get("/console/api/analytics", analytics_report),
        web.get("/console/api/undelivered-notices", undelivered_notices),
    ]
