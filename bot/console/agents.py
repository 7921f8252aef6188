"""Console users in the console: who is online with what load (for reassigning), and the
admin's controls: add a user, deactivate or reactivate one, reset a password. Every admin
action is audited; deactivation and a password reset end every session of that user."""

from __future__ import annotations

from aiohttp import web

from bot.console import auth, forms
from bot.console.auth import requires, user_of
from bot.console.errors import Refused
from bot.keys import DB
from store import agents
from store.errors import NotFound
from store.models import utcnow

NO_AGENT = "坐席不存在"


@requires("agent")
async def list_agents(request: web.Request) -> web.Response:
    """`GET /console/api/agents` → users with online state and load (for reassigning)."""
    async with request.app[DB].session() as session:
        load = await agents.loads(session)
        now = utcnow()
        items = [
            {
                **auth.agent_json(a),
                "online": agents.is_online(a, now),
                "load": load.get(a.id, 0),
                "active": a.active,
            }
            for a in await agents.all_agents(session)
        ]
    return web.json_response({"agents": items})


@requires("admin", write=True)
async def create_agent(request: web.Request) -> web.Response:
    """`POST /console/api/agents {"username","password","role","display_name"}`: admins only."""
    user = user_of(request)
    body = await forms.body(request)
    username, password = body.get("username"), body.get("password")
    role, display_name = body.get("role", "agent"), body.get("display_name")
    if not isinstance(username, str) or not isinstance(password, str):
        raise Refused(400, "请填写用户名和密码")
    if not isinstance(role, str) or not isinstance(display_name, str | None):
        raise Refused(400, "角色或姓名格式错误")
    async with request.app[DB].session() as session:
        agent = await agents.create_agent(
            session, username, password, role=role, display_name=display_name
        )
        data = auth.agent_json(agent)
    await auth.audit(request, user.agent_id, "create_agent", f"agent:{data['username']}")
    return web.json_response({"agent": data}, status=201)


@requires("admin", write=True)
async def set_agent_active(request: web.Request) -> web.Response:
    """`POST /console/api/agents/{id}/active {"active": false|true}`: admins deactivate or
    reactivate a user. A deactivated user cannot sign in and every session of theirs ends at
    once (open sockets close). Audited (`agent_deactivate` / `agent_activate`)."""
    user = user_of(request)
    agent_id = forms.path_id(request, missing=NO_AGENT)
    active = (await forms.body(request)).get("active")
    if not isinstance(active, bool):
        raise Refused(400, "请指定启用或停用")
    if agent_id == user.agent_id and not active:
        raise Refused(400, "不能停用自己的账号")
    async with request.app[DB].session() as session:
        agent = await agents.set_active(session, agent_id, active)
        if agent is None:
            raise NotFound(NO_AGENT)
        data = {**auth.agent_json(agent), "active": agent.active}
    if not active:
        await auth.revoke_sessions(request.app, agent_id)
    action = "agent_activate" if active else "agent_deactivate"
    await auth.audit(request, user.agent_id, action, f"agent:{data['username']}")
    return web.json_response({"agent": data})


@requires("admin", write=True)
async def reset_password(request: web.Request) -> web.Response:
    """`POST /console/api/agents/{id}/password {"password"}`: admins set a new password
    (argon2id); every session of that user ends. Audited (`password_reset`)."""
    user = user_of(request)
    agent_id = forms.path_id(request, missing=NO_AGENT)
    password = (await forms.body(request)).get("password")
    if not isinstance(password, str) or not (
        agents.MIN_PASSWORD <= len(password) <= agents.MAX_PASSWORD
    ):
        raise Refused(400, f"密码长度应为{agents.MIN_PASSWORD}到{agents.MAX_PASSWORD}个字符")
    async with request.app[DB].session() as session:
        agent = await agents.set_password(session, agent_id, password)
        if agent is None:
            raise NotFound(NO_AGENT)
        data = auth.agent_json(agent)
    await auth.revoke_sessions(request.app, agent_id)
    await auth.audit(request, user.agent_id, "password_reset", f"agent:{data['username']}")
    return web.json_response({"agent": data})


def routes() -> list[web.RouteDef]:
    """The console-user routes of the console API."""
    p = "/console/api/agents"
    return [
        web.get(p, list_agents),
        web.post(p, create_agent),
        web.post(f"{p}/{{id}}/active", set_agent_active),
        web.post(f"{p}/{{id}}/password", reset_password),
    ]
