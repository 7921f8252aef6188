"""Console users (agents, supervisors, admins): argon2 password hashes and presence."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import AgentError
from store.models import Agent, Handoff, utcnow

ROLES = ("agent", "supervisor", "admin")
ONLINE_TIMEOUT = timedelta(seconds=60)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # login reads at most this many characters

_hasher = PasswordHasher()
# Verified when the username is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0000")


def role_at_least(role: str, needed: str) -> bool:
    """True if `role` includes the rights of `needed` (admin ⊇ supervisor ⊇ agent)."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


async def create_agent(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    role: str = "agent",
    display_name: str | None = None,
) -> Agent:
    """Add a console user with an argon2id hash; raises AgentError on bad input."""
    username = username.strip()
    if not username or len(username) > 64:
        raise AgentError("username must be 1-64 characters")
    if role not in ROLES:
        raise AgentError(f"role must be one of {', '.join(ROLES)}")
    _check_password(password)
    agent = Agent(
        username=username,
        display_name=(display_name or username)[:64],
        password_hash=await asyncio.to_thread(_hasher.hash, password),
        role=role,
    )
    try:
        async with session.begin_nested():
            session.add(agent)
            await session.flush()
    except IntegrityError as exc:
        raise AgentError(f"username {username!r} is taken") from exc
    return agent


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AgentError(f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AgentError(f"password must have at most {MAX_PASSWORD} characters")


async def set_active(session: AsyncSession, agent_id: int, active: bool) -> Agent | None:
    """Deactivate (or reactivate) a console user; None if there is no such user. An inactive
    user cannot sign in and every request of their existing sessions is refused."""
    agent = await session.get(Agent, agent_id)
    if agent is not None:
        agent.active = active
    return agent


async def set_password(session: AsyncSession, agent_id: int, password: str) -> Agent | None:
    """Replace a user's password with an argon2id hash of `password`; None if there is no
    such user; raises AgentError for a password too short or too long."""
    _check_password(password)
    agent = await session.get(Agent, agent_id)
    if agent is not None:
        agent.password_hash = await asyncio.to_thread(_hasher.hash, password)
    return agent


async def by_username(session: AsyncSession, username: str) -> Agent | None:
    """The agent with this username, or None."""
    stmt = select(Agent).where(Agent.username == username)
    return (await session.execute(stmt)).scalar_one_or_none()


async def verify(session: AsyncSession, username: str, password: str) -> Agent | None:
    """The active agent if the password matches, else None (same cost either way)."""
    agent = await by_username(session, username.strip())
    stored = agent.password_hash if agent is not None else _DUMMY_HASH
    try:
        # argon2 takes tens of milliseconds on purpose: keep it off the event loop.
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if agent is None or not agent.active:
        return None
    if _hasher.check_needs_rehash(agent.password_hash):
        agent.password_hash = await asyncio.to_thread(_hasher.hash, password)
    return agent


async def touch(session: AsyncSession, agent_id: int, now: datetime | None = None) -> None:
    """Record a presence heartbeat."""
    agent = await session.get(Agent, agent_id)
    if agent is not None:
        agent.last_seen_at = now or utcnow()


def is_online(agent: Agent, now: datetime | None = None) -> bool:
    """Seen within ONLINE_TIMEOUT."""
    now = now or utcnow()
    return agent.last_seen_at is not None and now - agent.last_seen_at < ONLINE_TIMEOUT


async def online_agents(session: AsyncSession, now: datetime | None = None) -> Sequence[Agent]:
    """Active agents with a heartbeat younger than ONLINE_TIMEOUT."""
    now = now or utcnow()
    stmt = (
        select(Agent)
        .where(Agent.active.is_(True), Agent.last_seen_at > now - ONLINE_TIMEOUT)
        .order_by(Agent.id)
    )
    return list((await session.execute(stmt)).scalars())


async def loads(session: AsyncSession) -> dict[int, int]:
    """Number of assigned hand-offs per agent id."""
    stmt = (
        select(Handoff.agent_id, func.count(Handoff.id))
        .where(Handoff.state == "assigned", Handoff.agent_id.is_not(None))
        .group_by(Handoff.agent_id)
    )
    return {a: int(n) for a, n in (await session.execute(stmt)).all() if a is not None}


async def least_loaded_online(
    session: AsyncSession, now: datetime | None = None, max_load: int | None = None
) -> Agent | None:
    """The online agent with the fewest assigned hand-offs (ties: lowest id), or None."""
    online = await online_agents(session, now)
    if not online:
        return None
    load = await loads(session)
    candidates = [a for a in online if max_load is None or load.get(a.id, 0) < max_load]
    if not candidates:
        return None
    return min(candidates, key=lambda a: (load.get(a.id, 0), a.id))


async def all_agents(session: AsyncSession) -> Sequence[Agent]:
    """Every console user, by id."""
    return list((await session.execute(select(Agent).order_by(Agent.id))).scalars())
