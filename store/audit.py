"""The audit trail in the store: who merged or split which citizens, and when.

The console writes its own rows (reveals, logins) through `bot.console.auth.audit`; changes made
inside the store (a 绑定 code redeemed, a phone verified, an identity unlinked) write theirs here,
in the same transaction as the change, so a change without its audit row cannot be committed.
Targets name internal ids only, never a phone number or a name.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AuditLog


def record(session: AsyncSession, action: str, target: str, agent_id: int | None = None) -> None:
    """Add one audit row to the current transaction (`agent_id` None: the citizen or system)."""
    session.add(AuditLog(agent_id=agent_id, action=action[:32], target=target[:128]))
