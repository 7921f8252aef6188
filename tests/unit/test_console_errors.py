"""The console's one error answer: each branch of the store's error tree, and a console
refusal, becomes `{"error": …}` with its status; paths outside /console/ are left alone."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.console.errors import Refused, console_errors
from store import errors

RAISED = {
    "not-found": errors.NotFound("工单不存在"),
    "conflict": errors.InvalidTransition("pending", "resolved", "hand-off"),
    "taken": errors.HandoffTaken("abc", "assigned"),
    "invalid": errors.InvalidWorkOrder("请填写正确的手机号码"),
    "busy": errors.LockTimeout("lock"),
    "refused": Refused(403, "该会话由其他坐席处理"),
}


@pytest.fixture
async def client():
    async def boom(request: web.Request) -> web.Response:
        raise RAISED[request.match_info["what"]]

    app = web.Application(middlewares=[console_errors])
    app.router.add_get("/console/api/{what}", boom)
    app.router.add_get("/other/{what}", boom)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("what", "status", "message"),
    [
        ("not-found", 404, "工单不存在"),
        ("conflict", 409, "当前状态 pending 不能执行此操作"),
        ("taken", 409, "该会话已被处理（assigned）"),
        ("invalid", 400, "请填写正确的手机号码"),
        ("busy", 503, "系统繁忙，请重试"),
        ("refused", 403, "该会话由其他坐席处理"),
    ],
)
async def test_console_errors_become_json_answers(client, what, status, message) -> None:
    resp = await client.get(f"/console/api/{what}")
    assert resp.status == status
    assert await resp.json() == {"error": message}


async def test_other_paths_are_not_mapped(client) -> None:
    resp = await client.get("/other/not-found")
    assert resp.status == 500
