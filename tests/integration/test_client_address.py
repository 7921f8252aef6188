"""Per-address limits behind a reverse proxy: the client address comes from X-Forwarded-For /
X-Real-IP only when the peer is a trusted proxy, and every per-address control (lookup API,
console login, classify, widget welcome, REST channel) counts on it. Gateways run on the
in-memory bus and on real Redis."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from bot import linking
from bot.app import create_app
from bot.channels.web import WELCOME_LIMIT
from bot.classify_api import CLASSIFY_LIMIT
from bot.client_address import client_address, limit_subject
from bot.console.auth import LOGIN_PER_ADDRESS, LOGIN_PER_USER_AND_ADDRESS
from bot.keys import CIPHER, DB, SETTINGS
from bot.linking import REDEEM_PER_ADDRESS
from bot.lookup import NUMBER_CLOSED
from bot.lookup import REFUSED as LOOKUP_REFUSED
from bot.settings import Settings
from store import work_orders
from store.categories import seed_taxonomy
from store.lookup import NUMBER_LIMIT, REQUESTER_LIMIT
from store.tracking import new_tracking_no
from tests.conftest import REDIS_URL
from tests.integration.test_console_helpers import PASSWORD, make_agent, unique
from tests.integration.test_web_channel import WELCOME, open_chat, say, turns

PROXY = "127.0.0.1/32"  # the test client connects from loopback: it plays the proxy


def address() -> str:
    """A client address no other test (or earlier run, in Redis) uses: its own IPv6 /64."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::{secrets.token_hex(2)}"


def via(client: str) -> dict[str, str]:
    """Headers our proxy (nginx `proxy_add_x_forwarded_for`) sends for `client`."""
    return {"X-Forwarded-For": client}


# --- the rule itself, on a real aiohttp server ------------------------------------------------


async def echo(trusted: str, headers: dict[str, str] | list[tuple[str, str]]) -> dict:
    """What `client_address` and `limit_subject` make of one request from 127.0.0.1."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {"address": client_address(request), "subject": limit_subject(request)}
        )

    app = web.Application()
    app[SETTINGS] = Settings(_env_file=None, trusted_proxies=trusted)
    app.router.add_get("/", handler)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        return await (await client.get("/", headers=headers)).json()
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("trusted", "headers", "expected"),
    [
        ("", {"X-Forwarded-For": "203.0.113.5"}, "127.0.0.1"),  # no proxy: headers are ignored
        ("", {"X-Real-IP": "203.0.113.5"}, "127.0.0.1"),
        ("10.0.0.0/8", {"X-Forwarded-For": "203.0.113.5"}, "127.0.0.1"),  # peer is no proxy
        (PROXY, {"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5"),
        (PROXY, {"X-Real-IP": "203.0.113.6"}, "203.0.113.6"),
        # The client wrote the left hops itself: only the hop our proxy appended counts.
        (PROXY, {"X-Forwarded-For": "1.1.1.1, 10.0.0.7, 203.0.113.5"}, "203.0.113.5"),
        # Two proxies of ours (127.0.0.1 ← 10.0.0.2): skip both, take the client.
        (
            "127.0.0.1, 10.0.0.0/8",
            {"X-Forwarded-For": "6.6.6.6, 203.0.113.5, 10.0.0.2"},
            "203.0.113.5",
        ),
        (PROXY, {"X-Forwarded-For": "not-an-address"}, "127.0.0.1"),
        (PROXY, {"X-Forwarded-For": "[2001:db8::5]:4431"}, "2001:db8::5"),
        (PROXY, {"X-Forwarded-For": "203.0.113.9:50123"}, "203.0.113.9"),
        (
            PROXY,
            [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.8")],
            "203.0.113.8",
        ),
    ],
)
async def test_client_address_believes_only_trusted_proxies(trusted, headers, expected) -> None:
    assert (await echo(trusted, headers))["address"] == expected


async def test_ipv6_clients_are_limited_per_64() -> None:
    one = await echo(PROXY, via("2001:db8:1:2:aaaa::1"))
    two = await echo(PROXY, via("2001:db8:1:2:ffff::9"))
    other = await echo(PROXY, via("2001:db8:1:3::1"))
    assert one["subject"] == two["subject"] == "ip:2001:db8:1:2::/64"
    assert other["subject"] != one["subject"]
    assert (await echo(PROXY, via("203.0.113.5")))["subject"] == "ip:203.0.113.5"


def test_a_bad_trusted_proxy_entry_stops_start_up_with_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES: 'nginx' is not an address"):
        Settings(_env_file=None, trusted_proxies="127.0.0.1, nginx")


# --- the gateway behind a proxy -----------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def proxied(request, settings, db) -> AsyncIterator[TestClient]:
    """The gateway behind a trusted proxy (the test client), on either bus."""
    update: dict[str, object] = {"trusted_proxies": PROXY}
    if request.param == "redis":
        update["redis_url"] = REDIS_URL
    client = TestClient(
        TestServer(create_app(settings.model_copy(update=update)), host="127.0.0.1")
    )
    await client.start_server()
    yield client
    await client.close()


async def file_order(gateway: TestClient, phone: str = "13812345678") -> str:
    async with gateway.app[DB].session() as s:
        await seed_taxonomy(s)
        order = await work_orders.create_work_order(
            s,
            gateway.app[CIPHER],
            conversation=None,
            kind="report",
            category_code="urban",
            description="楼道里的灯坏了好几天",
            location="某某小区3栋",
            contact_name="李先生",
            phone=phone,
            actor="bot",
            idempotency_key=uuid.uuid4().hex,
        )
        return order.tracking_no


async def look_up(gateway: TestClient, number: str, digits: str, client: str | None) -> int:
    headers = via(client) if client else {}
    resp = await gateway.get(f"/api/v1/work-orders/{number}?phone_last4={digits}", headers=headers)
    return resp.status


async def test_lookup_guesses_behind_a_proxy_block_the_guesser_not_the_owner(proxied) -> None:
    number = await file_order(proxied)
    guesser, owner = address(), address()
    statuses = await asyncio.gather(
        *(look_up(proxied, number, f"{i:04d}", guesser) for i in range(60))
    )
    assert statuses.count(404) == REQUESTER_LIMIT.max_attempts  # "not found", indistinguishable
    assert statuses.count(429) == 60 - REQUESTER_LIMIT.max_attempts
    assert await look_up(proxied, number, "5678", guesser) == 429
    assert await look_up(proxied, number, "5678", owner) == 200


async def refusal(gateway: TestClient, number: str, client: str) -> str:
    resp = await gateway.get(f"/api/v1/work-orders/{number}?phone_last4=0000", headers=via(client))
    assert resp.status == 429
    return (await resp.json())["error"]


async def test_each_refusal_states_a_true_wait_and_nothing_about_the_number(proxied) -> None:
    """A requester blocked for 15 minutes is told so; a number closed for up to 24 h is not told
    "15 minutes", and a number that exists gets the same words as one that does not."""
    number, unknown = await file_order(proxied), new_tracking_no(date(2026, 1, 5))
    guesser = address()
    for _ in range(REQUESTER_LIMIT.max_attempts):
        assert await look_up(proxied, number, "0000", guesser) == 404
    assert await refusal(proxied, number, guesser) == LOOKUP_REFUSED
    assert "15分钟" in LOOKUP_REFUSED

    # Many addresses close the number for everyone (the guesser's 5 count on `number` too).
    for target, failed in ((number, REQUESTER_LIMIT.max_attempts), (unknown, 0)):
        while failed < NUMBER_LIMIT.max_attempts:
            client = address()
            for _ in range(REQUESTER_LIMIT.max_attempts):
                assert await look_up(proxied, target, "0000", client) == 404
            failed += REQUESTER_LIMIT.max_attempts
    closed = [await refusal(proxied, target, address()) for target in (number, unknown)]
    assert closed == [NUMBER_CLOSED, NUMBER_CLOSED]
    assert "15分钟" not in NUMBER_CLOSED and "提交工单时使用的渠道" in NUMBER_CLOSED


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(gateway) -> None:
    number = await file_order(gateway)
    # Each guess claims another address; without TRUSTED_PROXIES all count on the real peer.
    statuses = [await look_up(gateway, number, f"{i:04d}", address()) for i in range(6)]
    assert statuses == [404] * 5 + [429]
    assert await look_up(gateway, number, "5678", address()) == 429


async def login(gateway: TestClient, username: str, password: str, client: str) -> int:
    resp = await gateway.post(
        "/console/api/login", json={"username": username, "password": password}, headers=via(client)
    )
    return resp.status


async def test_parallel_wrong_logins_lock_the_attacker_not_the_admin(proxied, settings) -> None:
    admin = unique("admin")
    await make_agent(settings.database_url, admin, role="admin")
    attacker, office = address(), address()
    statuses = await asyncio.gather(
        *(login(proxied, admin, f"guess {i}", attacker) for i in range(40))
    )
    limit = LOGIN_PER_USER_AND_ADDRESS.max_attempts
    assert statuses.count(401) == limit and statuses.count(429) == 40 - limit
    assert await login(proxied, admin, PASSWORD, attacker) == 429  # even the right password
    # The admin, from anywhere else, is not locked out by someone else's guesses.
    assert await login(proxied, admin, PASSWORD, office) == 200


async def test_one_address_cannot_try_many_usernames(proxied, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    scanner, limit = address(), LOGIN_PER_ADDRESS.max_attempts
    statuses = await asyncio.gather(
        *(login(proxied, unique("ghost"), f"pw {i}", scanner) for i in range(limit + 10))
    )
    assert statuses.count(401) == limit and statuses.count(429) == 10
    assert await login(proxied, name, PASSWORD, scanner) == 429
    assert await login(proxied, name, PASSWORD, address()) == 200


async def test_a_right_login_clears_only_its_own_count(proxied, settings) -> None:
    name = unique()
    await make_agent(settings.database_url, name)
    desk = address()
    for _ in range(3):  # typos, then the right password, three times over
        for _ in range(LOGIN_PER_USER_AND_ADDRESS.max_attempts - 1):
            assert await login(proxied, name, "typo typo typo", desk) == 401
        assert await login(proxied, name, PASSWORD, desk) == 200


async def test_classify_is_limited_per_client_address(proxied) -> None:
    caller = address()

    async def classify(client: str) -> int:
        resp = await proxied.post(
            "/api/v1/classify", json={"text": "路灯坏了，晚上很黑"}, headers=via(client)
        )
        return resp.status

    limit = CLASSIFY_LIMIT.max_attempts
    statuses = await asyncio.gather(*(classify(caller) for _ in range(limit + 10)))
    assert statuses.count(200) == limit and statuses.count(429) == 10
    refused = await proxied.post("/api/v1/classify", json={"text": "噪音"}, headers=via(caller))
    assert refused.status == 429 and refused.headers["Retry-After"] == "60"
    assert "频繁" in (await refused.json())["error"]
    assert await classify(address()) == 200


async def test_widget_welcomes_count_per_client_behind_the_proxy(proxied, fake_rasa) -> None:
    busy, other = address(), address()
    for _ in range(WELCOME_LIMIT.max_attempts):
        ws, _ = await open_chat(proxied, headers=via(busy))
        await ws.close()
    ws, session = await open_chat(proxied, headers=via(busy))
    assert session["history"] == []
    await ws.close()
    ws, session = await open_chat(proxied, headers=via(other))
    assert turns(session["history"]) == [WELCOME]
    await ws.close()


async def test_link_codes_typed_in_the_widget_count_per_client_address(proxied) -> None:
    """Fresh widget sessions from one address cannot share out the guesses (绑定 limit)."""
    guesser, citizen = address(), address()
    first, _ = await open_chat(proxied, headers=via(citizen))
    code = re.search(r"\b(\d{6})\b", (await say(first, "绑定"))["text"]).group(1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = []
    for _ in range(REDEEM_PER_ADDRESS.max_attempts + 1):
        ws, _ = await open_chat(proxied, headers=via(guesser))
        answers.append((await say(ws, f"绑定 {wrong}"))["text"])
        await ws.close()
    assert answers[:-1] == [linking.REFUSED] * REDEEM_PER_ADDRESS.max_attempts
    assert answers[-1] == linking.LOCKED
    other, _ = await open_chat(proxied, headers=via(address()))
    assert "绑定成功" in (await say(other, f"绑定 {code}"))["text"]
    await other.close()
    await first.close()


# --- the REST channel needs a key unless the gateway is loopback-only without a proxy -------


async def rest_turn(gateway: TestClient, headers: dict[str, str] | None = None) -> int:
    resp = await gateway.post(
        "/webhooks/rest/webhook", json={"sender": "crm-1", "message": "你好"}, headers=headers
    )
    return resp.status


async def serve(settings: Settings, **update: object) -> TestClient:
    client = TestClient(
        TestServer(create_app(settings.model_copy(update=update)), host="127.0.0.1")
    )
    await client.start_server()
    return client


async def test_rest_without_a_key_is_open_to_loopback_only_without_a_proxy(gateway) -> None:
    assert await rest_turn(gateway) == 200


@pytest.mark.parametrize(
    ("update", "reason"),
    [({"trusted_proxies": PROXY}, "TRUSTED_PROXIES"), ({"host": "192.0.2.10"}, "HOST=192.0.2.10")],
)
async def test_rest_without_a_key_is_closed_behind_a_proxy_or_on_a_public_bind(
    settings, db, caplog, update, reason
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.channels.rest"):
        client = await serve(settings, **update)
    try:
        # Loopback peer, and what a proxy would forward for a public caller: both refused.
        assert await rest_turn(client) == 401
        assert await rest_turn(client, via("127.0.0.1")) == 401
    finally:
        await client.close()
    closed = [r.getMessage() for r in caplog.records if "REST channel closed" in r.getMessage()]
    assert closed and reason in closed[0] and "REST_API_KEY" in closed[0]


async def test_rest_with_a_key_works_behind_a_proxy(settings, db) -> None:
    key = secrets.token_urlsafe(24)
    client = await serve(settings, trusted_proxies=PROXY, rest_api_key=SecretStr(key))
    try:
        assert await rest_turn(client, {"X-API-Key": key, **via(address())}) == 200
        assert await rest_turn(client, {"X-API-Key": "wrong", **via(address())}) == 401
        assert await rest_turn(client, via(address())) == 401
    finally:
        await client.close()
