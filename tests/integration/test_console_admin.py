"""Admins deactivate and reactivate agents and reset passwords (every session of that agent
ends, audited), and an open console socket closes once its session is no longer valid, found
by a periodic re-check even when the browser sends no heartbeat."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.console import auth
from bot.keys import BUS, DB, SETTINGS
from store.models import Agent, AuditLog
from tests.conftest import REDIS_URL
from tests.integration.test_console_helpers import PASSWORD, Console, make_agent, unique

NEW_PASSWORD = "a brand new password 7"


@pytest.fixture
def settings(settings):
    """Sockets re-check their session every 0.2 s."""
    return settings.model_copy(update={"console_session_check_seconds": 0.2})


async def _signed_in(gateway, settings, role: str = "agent") -> tuple[Console, str, int]:
    name = unique(role)
    agent_id = await make_agent(settings.database_url, name, role)
    console = Console(gateway)
    assert (await console.login(name)).status == 200
    return console, name, agent_id


async def _closed_with(ws, within: float = 3.0) -> int:
    """Wait for the close frame (skipping events); returns its code."""
    msg = await ws.receive(timeout=within)
    while msg.type.name == "TEXT":
        msg = await ws.receive(timeout=within)
    assert msg.type.name == "CLOSE"
    return msg.data


async def _audit(gateway) -> list[str]:
    async with gateway.app[DB].session() as s:
        return [f"{a.action} {a.target}" for a in (await s.execute(select(AuditLog))).scalars()]


async def test_socket_closes_when_the_agent_is_deactivated_in_the_database(
    gateway, settings
) -> None:
    console, _, agent_id = await _signed_in(gateway, settings)
    try:
        ws = await console.ws()
        async with gateway.app[DB].session() as s:  # e.g. another process or a script
            (await s.get_one(Agent, agent_id)).active = False
        assert await _closed_with(ws) == 4401  # no heartbeat was sent: the timer found it
        assert (await console.get("/console/api/me")).status == 401
    finally:
        await console.close()


async def test_socket_closes_when_its_session_expires(gateway, settings) -> None:
    console, _, _ = await _signed_in(gateway, settings)
    try:
        ws = await console.ws()
        sid = next(c.value for c in console.http.cookie_jar if c.key == auth.COOKIE)
        await gateway.app[BUS].delete(auth._bus_key(gateway.app, sid))  # the TTL ran out
        assert await _closed_with(ws) == 4401
    finally:
        await console.close()


async def test_socket_stays_open_while_the_session_is_valid(gateway, settings) -> None:
    console, _, _ = await _signed_in(gateway, settings)
    try:
        ws = await console.ws()
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=1.0)  # five re-checks passed, nothing closed it
        assert not ws.closed
    finally:
        await console.close()


async def test_deactivation_ends_every_session_at_once_and_is_audited(gateway, settings) -> None:
    # No timer within this test: the socket must close on the admin's action itself.
    gateway.app[SETTINGS].console_session_check_seconds = 600
    admin, _, _ = await _signed_in(gateway, settings, "admin")
    agent, name, agent_id = await _signed_in(gateway, settings)
    second_device = Console(gateway)
    try:
        assert (await second_device.login(name)).status == 200
        ws = await agent.ws()
        off = await admin.post(f"/console/api/agents/{agent_id}/active", {"active": False})
        assert off.status == 200 and (await off.json())["agent"]["active"] is False
        assert await _closed_with(ws, within=1.0) == 4401
        assert (await agent.get("/console/api/me")).status == 401
        assert (await second_device.get("/console/api/me")).status == 401
        assert (await Console(gateway).login(name)).status == 401
        listed = await (await admin.get("/console/api/agents")).json()
        assert next(a for a in listed["agents"] if a["id"] == agent_id)["active"] is False

        on = await admin.post(f"/console/api/agents/{agent_id}/active", {"active": True})
        assert on.status == 200
        assert (await agent.get("/console/api/me")).status == 401  # old sessions stay dead
        again = Console(gateway)
        assert (await again.login(name)).status == 200
        await again.close()
    finally:
        for c in (admin, agent, second_device):
            await c.close()
    trail = await _audit(gateway)
    assert f"agent_deactivate agent:{name}" in trail and f"agent_activate agent:{name}" in trail


async def test_password_reset_revokes_sessions_and_stores_an_argon2_hash(gateway, settings) -> None:
    admin, _, _ = await _signed_in(gateway, settings, "admin")
    agent, name, agent_id = await _signed_in(gateway, settings)
    path = f"/console/api/agents/{agent_id}/password"
    try:
        weak = await admin.post(path, {"password": "short"})
        assert weak.status == 400 and "密码长度" in (await weak.json())["error"]
        assert (await agent.get("/console/api/me")).status == 200  # a refusal changes nothing

        assert (await admin.post(path, {"password": NEW_PASSWORD})).status == 200
        assert (await agent.get("/console/api/me")).status == 401
        fresh = Console(gateway)
        assert (await fresh.login(name, PASSWORD)).status == 401
        assert (await fresh.login(name, NEW_PASSWORD)).status == 200
        assert (await fresh.get("/console/api/me")).status == 200
        await fresh.close()
        assert (
            await admin.post("/console/api/agents/999999/password", {"password": NEW_PASSWORD})
        ).status == 404
    finally:
        await admin.close()
        await agent.close()
    async with gateway.app[DB].session() as s:
        stored = (await s.get_one(Agent, agent_id)).password_hash
    assert stored.startswith("$argon2id$") and NEW_PASSWORD not in stored
    assert f"password_reset agent:{name}" in await _audit(gateway)


async def test_admins_cannot_lock_themselves_out_and_others_cannot_administer(
    gateway, settings
) -> None:
    admin, _, admin_id = await _signed_in(gateway, settings, "admin")
    boss, _, _ = await _signed_in(gateway, settings, "supervisor")
    try:
        refused = await admin.post(f"/console/api/agents/{admin_id}/active", {"active": False})
        assert refused.status == 400
        assert (await admin.get("/console/api/me")).status == 200
        assert (
            await boss.post(f"/console/api/agents/{admin_id}/password", {"password": NEW_PASSWORD})
        ).status == 403
        bad = await admin.post(f"/console/api/agents/{admin_id}/active", {"active": "no"})
        assert bad.status == 400
    finally:
        await admin.close()
        await boss.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_reset_on_one_gateway_ends_sessions_on_another(settings, db) -> None:
    """Two gateway processes sharing Redis: the admin acts on one, the agent's socket and
    session on the other end at once (no timer: the re-check interval is long)."""
    shared = settings.model_copy(
        update={"redis_url": REDIS_URL, "console_session_check_seconds": 600}
    )
    one = TestClient(TestServer(create_app(shared), host="127.0.0.1"))
    two = TestClient(TestServer(create_app(shared), host="127.0.0.1"))
    await one.start_server()
    await two.start_server()
    consoles: list[Console] = []
    try:
        admin, _, _ = await _signed_in(one, settings, "admin")
        agent, name, agent_id = await _signed_in(two, settings)
        consoles += [admin, agent]
        ws = await agent.ws()
        path = f"/console/api/agents/{agent_id}/password"
        assert (await admin.post(path, {"password": NEW_PASSWORD})).status == 200
        assert await _closed_with(ws, within=2.0) == 4401
        assert (await agent.get("/console/api/me")).status == 401
        assert (await agent.login(name, NEW_PASSWORD)).status == 200  # on gateway two
    finally:
        for c in consoles:
            await c.close()
        await one.close()
        await two.close()
