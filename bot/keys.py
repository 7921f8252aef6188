"""Typed application keys (aiohttp `web.AppKey`) for everything the gateway shares."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.channels.base import ChannelRegistry
from bot.rasa_client import RasaClient
from bot.router import Router
from bot.settings import Settings
from bot.sms import SmsSender
from store.bus import Bus
from store.crypto import PersonalDataCipher
from store.db import Database

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
BUS = web.AppKey("bus", Bus)
HTTP = web.AppKey("http", aiohttp.ClientSession)
RASA = web.AppKey("rasa", RasaClient)
CHANNELS = web.AppKey("channels", ChannelRegistry)
ROUTER = web.AppKey("router", Router)
CIPHER = web.AppKey("cipher", PersonalDataCipher)
SMS = web.AppKey("sms", SmsSender)  # set only when SMS is configured (see bot/sms.py)
