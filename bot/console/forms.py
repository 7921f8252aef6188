"""Reading console request bodies: a JSON object and bounded text fields, or a 400."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.console.errors import Refused

MAX_TEXT = 2000


async def body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; Refused(400) for anything else."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refused(400, "请求格式错误") from None
    if not isinstance(data, dict):
        raise Refused(400, "请求格式错误")
    return data


def text(data: dict[str, Any], key: str, *, required: str | None = None) -> str | None:
    """`data[key]` stripped; None when absent or blank (Refused(400, required) if required);
    Refused(400) when it is not text or longer than MAX_TEXT."""
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Refused(400, required)
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise Refused(400, f"内容格式错误或超过{MAX_TEXT}字")
    return value.strip()


def path_id(request: web.Request, name: str = "id", *, missing: str) -> int:
    """An integer id from the route; Refused(404, missing) when it is not one."""
    try:
        return int(request.match_info[name])
    except ValueError:
        raise Refused(404, missing) from None
