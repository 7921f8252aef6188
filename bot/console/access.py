"""The console's one ownership rule. Every route that touches a conversation, a hand-off, a
message, a citizen's work order or contact data asks `owns`; docs/console.md has the table.

* Supervisors and admins may act on everything, by role.
* An agent may act on, or reveal anything of, a conversation only while its current hand-off
  is assigned to them. Data that follows the citizen (work orders, contact data) is theirs
  while they own a conversation of that citizen on any linked channel.
* Looking at a pending hand-off (masked) and claiming it are open to every agent: claiming is
  how one becomes the owner. Nobody owns a pending hand-off.

A refusal is 403 where the thing is visible in the queue anyway (hand-offs), 404 where even its
existence is private (messages by id, work orders by number).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.auth import ConsoleUser
from bot.console.errors import Refused
from store import agents, assignment, handoffs
from store.errors import NotFound
from store.models import Handoff

NOT_YOURS = "该会话由其他坐席处理"


async def owns(
    session: AsyncSession,
    user: ConsoleUser,
    *,
    handoff: Handoff | None = None,
    conversation_id: int | None = None,
    citizen_id: int | None = None,
) -> bool:
    """The rule: may `user` act on this hand-off / conversation / citizen's data? Give one."""
    if agents.role_at_least(user.role, "supervisor"):
        return True
    if handoff is not None:
        return handoff.state == "assigned" and handoff.agent_id == user.agent_id
    if conversation_id is None and citizen_id is None:
        return False
    return await handoffs.assigned_to(
        session, user.agent_id, conversation_id=conversation_id, citizen_id=citizen_id
    )


async def load_handoff(
    session: AsyncSession, public_id: str, *, for_update: bool = False
) -> Handoff:
    """The hand-off, or NotFound (the transaction rolls back)."""
    handoff = await assignment.load(session, public_id, for_update=for_update)
    if handoff is None:
        raise NotFound("转人工记录不存在")
    return handoff


async def owned_handoff(session: AsyncSession, user: ConsoleUser, public_id: str) -> Handoff:
    """The hand-off if `user` owns it, else NotFound / Refused(403)."""
    handoff = await load_handoff(session, public_id)
    if not await owns(session, user, handoff=handoff):
        raise Refused(403, NOT_YOURS)
    return handoff


async def may_view(session: AsyncSession, user: ConsoleUser, handoff: Handoff) -> bool:
    """Opening a hand-off's (masked) page: its owner, supervisors, and every agent while it is
    pending in the shared queue."""
    return handoff.state == "pending" or await owns(session, user, handoff=handoff)
