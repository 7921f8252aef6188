"""The console's ownership rule, route by route.

For every console route that takes an id (hand-off, conversation, message, work order, agent)
the table below says who gets through. Each case builds a fresh world: a citizen whose
hand-off is assigned to `owner`, with a masked phone number in a message, in the hand-off
context and in a dispatched work order. A signed-in agent who does not own that conversation
is refused (403, 404, or 409 for a claim), agents are refused supervisor and admin routes, and
then the one who may act gets through (which also proves the refusal changed nothing).
The table must cover every such route the app registers: a new route without an entry fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.keys import CIPHER, DB
from store import conversations, handoffs
from store.categories import seed_taxonomy
from store.handoff_context import seal
from store.models import AuditLog, Handoff, Message
from tests.integration.test_console_helpers import Console, claim_by_hand, make_agent, unique

FORM = {
    "kind": "report",
    "description": "幸福路8号路灯不亮",
    "location": "幸福路8号",
    "contact_name": "王小明",
    "phone": "13812345678",
}


@pytest.fixture
def settings(settings):
    """Claims by hand; open around the clock."""
    return claim_by_hand(settings)


@dataclass
class World:
    """One citizen's conversation owned by `owner`, and the other console users."""

    consoles: dict[str, Console]
    ids: dict[str, int]
    handoff: str = ""
    conversation: str = ""
    message: int = 0
    tracking_no: str = ""


@dataclass(frozen=True)
class Case:
    """Who may call one route: `who` passes with `ok`; a non-owning agent gets `denied`."""

    params: Callable[[World], dict[str, Any]]
    body: Callable[[World], dict[str, Any]] = field(default=lambda w: {})
    who: str = "owner"  # owner | supervisor | admin
    ok: int = 200
    denied: int = 403


def _h(w: World) -> dict[str, Any]:
    return {"id": w.handoff}


def _wo(w: World) -> dict[str, Any]:
    return {"tracking_no": w.tracking_no}


API = "/console/api"
CASES: dict[tuple[str, str], Case] = {
    ("GET", f"{API}/handoffs/{{id}}"): Case(_h),
    ("POST", f"{API}/handoffs/{{id}}/claim"): Case(_h, denied=409),
    ("POST", f"{API}/handoffs/{{id}}/reassign"): Case(
        _h, lambda w: {"agent_id": w.ids["other"]}, who="supervisor"
    ),
    ("POST", f"{API}/handoffs/{{id}}/reply"): Case(_h, lambda w: {"text": "您好"}),
    ("POST", f"{API}/handoffs/{{id}}/note"): Case(_h, lambda w: {"text": "内部备注"}),
    ("POST", f"{API}/handoffs/{{id}}/return"): Case(_h),
    ("POST", f"{API}/handoffs/{{id}}/close"): Case(_h),
    ("POST", f"{API}/messages/{{id}}/reveal"): Case(lambda w: {"id": w.message}, denied=404),
    ("POST", f"{API}/handoffs/{{id}}/context/reveal"): Case(
        _h, lambda w: {"path": ["slots", "phone"]}
    ),
    ("POST", f"{API}/handoffs/{{id}}/work-orders"): Case(
        _h, lambda w: {**FORM, "description": "另一处路灯也不亮"}, ok=201
    ),
    ("POST", f"{API}/handoffs/{{id}}/work-orders/{{tracking_no}}/note"): Case(
        lambda w: {"id": w.handoff, "tracking_no": w.tracking_no}, lambda w: {"text": "补充"}
    ),
    ("POST", f"{API}/conversations/{{id}}/claim"): Case(
        lambda w: {"id": w.conversation}, denied=409
    ),
    ("POST", f"{API}/work-orders/{{tracking_no}}/status"): Case(
        _wo, lambda w: {"to": "in_progress"}, denied=404
    ),
    ("POST", f"{API}/work-orders/{{tracking_no}}/note"): Case(
        _wo, lambda w: {"text": "补充"}, denied=404
    ),
    ("POST", f"{API}/work-orders/{{tracking_no}}/delay"): Case(
        _wo, lambda w: {"reason": "需协调"}, who="supervisor", denied=404
    ),
    ("POST", f"{API}/work-orders/{{tracking_no}}/reveal"): Case(_wo, denied=404),
    ("GET", f"{API}/conversations/{{id}}/identities"): Case(
        lambda w: {"id": w.conversation}, who="supervisor"
    ),
    # The test citizen has no second channel: past the role check the answer is "not linked".
    ("POST", f"{API}/conversations/{{id}}/unlink"): Case(
        lambda w: {"id": w.conversation}, who="supervisor", ok=409
    ),
    ("POST", f"{API}/agents/{{id}}/active"): Case(
        lambda w: {"id": w.ids["target"]}, lambda w: {"active": False}, who="admin"
    ),
    ("POST", f"{API}/agents/{{id}}/password"): Case(
        lambda w: {"id": w.ids["target"]}, lambda w: {"password": "a new password 42"}, who="admin"
    ),
}


def _routes_with_ids(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every console route whose path takes a parameter."""
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter")
        if path and path.startswith("/console") and route.method != "HEAD":
            found.add((route.method, path))
    return found


async def test_every_console_route_with_an_id_has_an_ownership_case(gateway) -> None:
    registered = _routes_with_ids(gateway.app)
    assert registered == set(CASES), (
        f"routes without a case: {sorted(registered - set(CASES))}; "
        f"cases without a route: {sorted(set(CASES) - registered)}"
    )


@pytest.fixture
async def world(gateway, fake_rasa, settings) -> AsyncIterator[World]:
    """A fresh world per test; the consoles are closed afterwards."""
    w = World({}, {})
    try:
        await _build(w, gateway, fake_rasa, settings)
        yield w
    finally:
        for console in w.consoles.values():
            await console.close()


async def _build(w: World, gateway, fake_rasa, settings) -> None:
    roles = {"owner": "agent", "other": "agent", "boss": "supervisor", "admin": "admin"}
    for key, role in {**roles, "target": "agent"}.items():
        name = unique(key)
        w.ids[key] = await make_agent(settings.database_url, name, role)
        if key in roles:
            w.consoles[key] = Console(gateway)
            assert (await w.consoles[key].login(name)).status == 200
    sender = unique("citizen")
    fake_rasa.status = 500  # the bot is down: the citizen is handed to a human
    await gateway.post(
        "/webhooks/rest/webhook", json={"sender": sender, "message": "我电话13812345678"}
    )
    fake_rasa.status = 200
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
        conv = await conversations.ensure_conversation(s, "rest", sender)
        handoff = await handoffs.open_for(s, conv.id)
        handoff.context = seal({"slots": {"phone": "13812345678"}}, gateway.app[CIPHER], conv.id)
        w.handoff, w.conversation = handoff.public_id, conv.public_id
        w.message = (
            await s.execute(
                select(Message.id).where(
                    Message.conversation_id == conv.id, Message.sender == "citizen"
                )
            )
        ).scalar_one()
    owner, boss = w.consoles["owner"], w.consoles["boss"]
    assert (await owner.post(f"{API}/handoffs/{w.handoff}/claim")).status == 200
    filed = await owner.post(f"{API}/handoffs/{w.handoff}/work-orders", FORM)
    w.tracking_no = (await filed.json())["work_order"]["tracking_no"]
    dispatched = await boss.post(
        f"{API}/work-orders/{w.tracking_no}/status",
        {"to": "dispatched", "department_code": "urban_mgmt"},
    )
    assert dispatched.status == 200


async def _call(console: Console, method: str, path: str, body: dict[str, Any]):
    if method == "GET":
        return await console.get(path)
    return await console.post(path, body)


@pytest.mark.parametrize("route", list(CASES), ids=[f"{m} {p}" for m, p in CASES])
async def test_only_the_owner_or_the_role_gets_through(
    route: tuple[str, str], world: World
) -> None:
    method, template = route
    case = CASES[route]
    w = world
    path = template.format(**case.params(w))
    body = case.body(w)
    refused = await _call(w.consoles["other"], method, path, body)
    assert refused.status == case.denied, await refused.text()
    assert "error" in await refused.json()
    below = {"owner": [], "supervisor": ["owner"], "admin": ["owner", "boss"]}[case.who]
    for key in below:
        assert (await _call(w.consoles[key], method, path, body)).status == 403
    passer = w.consoles[{"owner": "owner", "supervisor": "boss", "admin": "admin"}[case.who]]
    allowed = await _call(passer, method, path, body)
    assert allowed.status == case.ok, await allowed.text()


async def test_a_refused_reveal_leaves_no_audit_row_and_shows_nothing(
    gateway, world: World
) -> None:
    w = world
    other = w.consoles["other"]
    message = await other.post(f"{API}/messages/{w.message}/reveal")
    context = await other.post(
        f"{API}/handoffs/{w.handoff}/context/reveal", {"path": ["slots", "phone"]}
    )
    order = await other.post(f"{API}/work-orders/{w.tracking_no}/reveal")
    for resp in (message, context, order):
        assert "13812345678" not in await resp.text()
    async with gateway.app[DB].session() as s:
        rows = (
            await s.execute(select(AuditLog).where(AuditLog.agent_id == w.ids["other"]))
        ).scalars()
        assert [r.action for r in rows] == ["login"]


async def test_an_agent_loses_access_when_the_handoff_is_reassigned(gateway, world: World) -> None:
    w = world
    owner, boss = w.consoles["owner"], w.consoles["boss"]
    moved = await boss.post(f"{API}/handoffs/{w.handoff}/reassign", {"agent_id": w.ids["other"]})
    assert moved.status == 200
    assert (await owner.post(f"{API}/messages/{w.message}/reveal")).status == 404
    assert (await owner.post(f"{API}/work-orders/{w.tracking_no}/reveal")).status == 404
    assert (await owner.get(f"{API}/handoffs/{w.handoff}")).status == 403
    now_theirs = await w.consoles["other"].post(f"{API}/messages/{w.message}/reveal")
    assert (await now_theirs.json())["text"] == "我电话13812345678"
    async with gateway.app[DB].session() as s:
        h = (await s.execute(select(Handoff).where(Handoff.public_id == w.handoff))).scalar_one()
        assert h.agent_id == w.ids["other"]
