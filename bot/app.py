"""The gateway's app factory: every public HTTP surface of the product."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from types import ModuleType

import aiohttp
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from bot import (
    classify_api,
    console,
    health,
    linking,
    lookup,
    notifier,
    phone_verification,
    sms,
    sweeper,
    unlinking,
)
from bot.channels import rest, telegram, wechat
from bot.channels import web as web_channel
from bot.channels.base import ChannelRegistry
from bot.keys import BUS, CHANNELS, CIPHER, DB, HTTP, RASA, ROUTER, SETTINGS, SMS
from bot.rasa_client import RasaClient
from bot.router import Router
from bot.settings import Settings, get_settings
from bot.text import for_nlu
from store.bus import create_bus
from store.crypto import PersonalDataCipher
from store.db import Database

log = logging.getLogger(__name__)

# Each feature module registers its routes and start-up work through one `setup(app)`.
# Every feature registers its routes, channels and background tasks through `setup(app)`.
FEATURES: tuple[ModuleType, ...] = (
    web_channel,
    wechat,
    telegram,
    console,
    lookup,
    classify_api,
    notifier,
    sweeper,
)


@web.middleware
async def security_headers(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Conservative headers on every answer; pages set their own CSP where they need more."""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    return response


# What a request meets while the database or Redis is down or restarting.
BACKEND_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, RedisError, ConnectionError)


@web.middleware
async def backend_unavailable(request: web.Request, handler: Callable) -> web.StreamResponse:
    """A request that meets a database or Redis outage gets a clean 503 (platforms and
    clients retry on it) instead of a 500 with a stack trace in the log for each one."""
    try:
        return await handler(request)
    except BACKEND_ERRORS as exc:
        log.warning(
            "%s %s: backend unavailable (%s)", request.method, request.path, type(exc).__name__
        )
        return web.json_response(
            {"error": "服务暂时不可用，请稍后再试。"}, status=503, headers={"Retry-After": "5"}
        )


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    for_nlu("預熱")  # load opencc now, not inside a platform's reply window
    cipher = PersonalDataCipher(settings.data_key.get_secret_value())
    db = Database(settings.database_url, cipher=cipher)
    bus = create_bus(settings.redis_url, settings.redis_prefix)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    app[DB], app[BUS], app[HTTP] = db, bus, http
    app[CIPHER] = cipher
    app[RASA] = RasaClient(
        settings.rasa_url, http, settings.rasa_timeout, settings.rasa_token.get_secret_value()
    )
    sender = sms.sender_from_settings(settings, http)
    if sender is not None:
        app[SMS] = sender
    # Commands the gateway answers itself, before Rasa: 绑定, 验证手机 (+ its code), 解绑.
    interceptors = [
        partial(linking.intercept, app),
        partial(phone_verification.intercept, app),
        partial(unlinking.intercept, app),
    ]
    app[ROUTER] = Router(
        db,
        bus,
        app[RASA],
        app[CHANNELS],
        interceptors=interceptors,
        answer_within_seconds=settings.answer_within_seconds,
        answer_max_tries=settings.answer_max_tries,
    )
    yield
    await app[ROUTER].drain(cancel=True)
    await http.close()
    await bus.close()
    await db.close()


def create_app(settings: Settings | None = None) -> web.Application:
    """Build the gateway. Resources open on start-up and close on clean-up."""
    settings = settings or get_settings()
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[security_headers, backend_unavailable]
    )
    app[SETTINGS] = settings
    app[CHANNELS] = ChannelRegistry()
    app.cleanup_ctx.append(_resources)
    health.setup(app)
    rest.setup(app)
    for feature in FEATURES:
        feature.setup(app)
    return app
