"""Console sign-in: argon2 passwords, lockout, roles, CSRF, logout, Origin, audit."""

from __future__ import annotations

from sqlalchemy import select

from store.db import Database
from store.models import AuditLog
from tests.integration.test_console_helpers import Console, make_agent, unique


async def _audit_actions(database_url: str) -> list[tuple[str, str]]:
    db = Database(database_url)
    async with db.session() as s:
        rows = (await s.execute(select(AuditLog).order_by(AuditLog.id))).scalars()
        out = [(r.action, r.target) for r in rows]
    await db.close()
    return out


async def test_login_sets_a_strict_httponly_cookie_and_is_audited(gateway, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        resp = await console.login(name)
        assert resp.status == 200
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # public_base_url is plain http in tests
        me = await console.get("/console/api/me")
        assert (await me.json())["agent"]["username"] == name
    finally:
        await console.close()
    assert ("login", f"agent:{name}") in await _audit_actions(settings.database_url)


async def test_wrong_password_and_unknown_user_are_refused_alike(gateway, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        bad = await console.login(name, "wrong password!!")
        unknown = await console.login(unique("ghost"), "wrong password!!")
        assert bad.status == unknown.status == 401
        assert (await bad.json()) == (await unknown.json())
        assert (await console.get("/console/api/me")).status == 401
    finally:
        await console.close()
    assert ("login_failed", f"username:{name}") in await _audit_actions(settings.database_url)


async def test_lockout_after_five_failures_even_with_the_right_password(gateway, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        for _ in range(5):
            assert (await console.login(name, "nope nope nope")).status == 401
        locked = await console.login(name)
        assert locked.status == 429
        assert "15分钟" in (await locked.json())["error"]
    finally:
        await console.close()


async def test_a_flood_of_refused_logins_writes_one_lock_row(gateway, settings) -> None:
    """The failure that locks is audited once; the refusals after it write nothing."""
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        statuses = [(await console.login(name, "nope nope nope")).status for _ in range(45)]
        # Other usernames from the same address until the address limit (30) runs out.
        for _ in range(25):
            statuses.append((await console.login(unique("ghost"), "nope nope nope")).status)
        statuses += [(await console.login(unique("ghost"), "x y z")).status for _ in range(20)]
    finally:
        await console.close()
    assert statuses.count(401) == 30 and statuses.count(429) == 60
    rows = await _audit_actions(settings.database_url)
    locked = [target for action, target in rows if action == "login_locked"]
    assert locked == [f"username:{name}", "address:ip:127.0.0.1"]
    assert sum(1 for action, _ in rows if action == "login_failed") == 30


async def test_unauthenticated_api_and_socket_are_refused(gateway) -> None:
    assert (await gateway.get("/console/api/handoffs")).status == 401
    assert (await gateway.post("/console/api/handoffs/x/claim")).status == 401
    assert (await gateway.get("/console/ws")).status == 401


async def test_csrf_token_is_required_on_writes(gateway, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        await console.login(name)
        missing = await console.post("/console/api/logout", csrf=False)
        assert missing.status == 403 and "CSRF" in (await missing.json())["error"]
        console.csrf = "forged"
        assert (await console.post("/console/api/logout")).status == 403
        # Still signed in: the refused writes changed nothing.
        assert (await console.get("/console/api/me")).status == 200
    finally:
        await console.close()


async def test_foreign_origin_is_refused(gateway, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        await console.login(name)
        resp = await console.http.post(
            console.base + "/console/api/logout",
            headers={"X-CSRF-Token": console.csrf, "Origin": "https://evil.example"},
        )
        assert resp.status == 403
        ws = await console.http.get(
            console.base + "/console/ws", headers={"Origin": "https://evil.example"}
        )
        assert ws.status == 403
    finally:
        await console.close()


async def test_logout_invalidates_the_session_server_side(gateway, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        await console.login(name)
        stolen = {c.key: c.value for c in console.http.cookie_jar}
        assert (await console.post("/console/api/logout")).status == 200
        # Replaying the old cookie value does not work any more.
        replay = await gateway.get(
            "/console/api/me", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in stolen.items())}
        )
        assert replay.status == 401
    finally:
        await console.close()


async def test_logout_closes_open_console_sockets(gateway, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    console = Console(gateway)
    try:
        await console.login(name)
        ws = await console.ws()
        await console.post("/console/api/logout")
        msg = await ws.receive(timeout=5)
        while msg.type.name == "TEXT":
            msg = await ws.receive(timeout=5)
        assert msg.type.name == "CLOSE" and msg.data == 4401
        assert ws.closed
    finally:
        await console.close()


async def test_only_admins_create_users(gateway, settings) -> None:
    admin, agent = unique("admin"), unique()
    await make_agent(settings.database_url, admin, "admin")
    await make_agent(settings.database_url, agent, "agent")
    a, b = Console(gateway), Console(gateway)
    try:
        await a.login(admin)
        await b.login(agent)
        body = {"username": unique("new"), "password": "long enough 123", "role": "supervisor"}
        assert (await b.post("/console/api/agents", body)).status == 403
        created = await a.post("/console/api/agents", body)
        assert created.status == 201
        assert (await created.json())["agent"]["role"] == "supervisor"
        weak = await a.post("/console/api/agents", {"username": unique(), "password": "short"})
        assert weak.status == 400
        newcomer = Console(gateway)
        assert (await newcomer.login(body["username"], body["password"])).status == 200
        await newcomer.close()
    finally:
        await a.close()
        await b.close()
