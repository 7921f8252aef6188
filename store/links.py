"""One citizen across channels: merging the citizens behind several channel identities, and
splitting one identity off again.

A merge moves every ChannelIdentity and WorkOrder of one citizen to another and removes the
emptied citizen. The older citizen (created first) always survives, so the result does not
depend on which channel asked; merging twice changes nothing. Merges happen only on proof: a
绑定 one-time code shown in one channel and typed in another (bot/linking.py), or the same phone
verified by an SMS code (store/phone_verification.py). A phone typed into a form proves nothing.

An unlink gives one identity a citizen of its own again. The work orders filed through that
identity go with it (they were filed from there, so its notices belong there); orders filed
through the other identities stay. The verified phone stays with the citizen left behind.

Every merge and unlink writes an audit row (store/audit.py) in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store import audit
from store.models import ChannelIdentity, Citizen, WorkOrder


class NotLinked(ValueError):
    """The identity is the only one of its citizen: there is nothing to unlink."""

    def __init__(self, identity_id: int) -> None:
        super().__init__(f"identity {identity_id} is not linked to another")
        self.identity_id = identity_id


@dataclass(frozen=True)
class Unlinked:
    """What an unlink did: the identity's new citizen and how many orders went with it."""

    identity_id: int
    old_citizen_id: int
    new_citizen_id: int
    orders_moved: int


async def merge_citizens(
    session: AsyncSession,
    a_id: int,
    b_id: int,
    *,
    via: str = "link_code",
    agent_id: int | None = None,
) -> int:
    """Merge citizens `a_id` and `b_id` into the older one; return the survivor's id.

    `via` says what proved they are one person (`link_code`, `phone`); it is audited as
    `merge:<via>` with the ids involved.
    """
    if a_id == b_id:
        return a_id
    keep_id, gone_id = min(a_id, b_id), max(a_id, b_id)
    keep = await session.get(Citizen, keep_id, with_for_update=True)
    gone = await session.get(Citizen, gone_id, with_for_update=True)
    if keep is None:
        raise LookupError(f"citizen {keep_id} does not exist")
    if gone is None:  # already merged
        return keep_id
    await session.execute(
        update(ChannelIdentity)
        .where(ChannelIdentity.citizen_id == gone_id)
        .values(citizen_id=keep_id)
    )
    await session.execute(
        update(WorkOrder).where(WorkOrder.citizen_id == gone_id).values(citizen_id=keep_id)
    )
    # Personal data the survivor lacks is taken over, never overwritten; through the clear
    # attributes, so it is encrypted again under the survivor's row (store/sealed.py).
    if keep.name is None and gone.name is not None:
        keep.name = gone.name
    if keep.phone_verified_at is None and gone.phone_verified_at is not None:
        keep.phone, keep.phone_hash = gone.phone, gone.phone_hash
        keep.phone_verified_at = gone.phone_verified_at
    audit.record(session, f"merge:{via}", f"citizen:{gone_id}->{keep_id}", agent_id)
    await session.flush()
    try:
        async with session.begin_nested():
            await session.execute(delete(Citizen).where(Citizen.id == gone_id))
    except IntegrityError:
        pass  # something else still points at it; an empty citizen is harmless
    return keep_id


async def link_identity(
    session: AsyncSession, identity_id: int, citizen_id: int, *, via: str = "link_code"
) -> int:
    """Make the citizen of `identity_id` and `citizen_id` one citizen; return the survivor."""
    identity = await session.get_one(ChannelIdentity, identity_id)
    return await merge_citizens(session, identity.citizen_id, citizen_id, via=via)


async def linked_channels(session: AsyncSession, citizen_id: int) -> list[str]:
    """The channels (sorted, distinct) through which `citizen_id` writes to 12345."""
    stmt = (
        select(ChannelIdentity.channel)
        .where(ChannelIdentity.citizen_id == citizen_id)
        .distinct()
        .order_by(ChannelIdentity.channel)
    )
    return list((await session.execute(stmt)).scalars())


async def identities_of(session: AsyncSession, citizen_id: int) -> list[ChannelIdentity]:
    """The channel identities of one citizen, oldest first."""
    stmt = (
        select(ChannelIdentity)
        .where(ChannelIdentity.citizen_id == citizen_id)
        .order_by(ChannelIdentity.id)
    )
    return list((await session.execute(stmt)).scalars())


async def unlink_identity(
    session: AsyncSession, identity_id: int, *, by: str = "citizen", agent_id: int | None = None
) -> Unlinked:
    """Give `identity_id` a citizen of its own again (see the module docstring for its orders).

    Raises NotLinked when it is its citizen's only identity. Audited as `unlink:<by>`.
    """
    identity = await session.get_one(
        ChannelIdentity, identity_id, with_for_update=True, populate_existing=True
    )
    old_id = identity.citizen_id
    await session.get_one(Citizen, old_id, with_for_update=True)  # no merge meanwhile
    others = await session.scalar(
        select(func.count())
        .select_from(ChannelIdentity)
        .where(ChannelIdentity.citizen_id == old_id, ChannelIdentity.id != identity_id)
    )
    if not others:
        raise NotLinked(identity_id)
    fresh = Citizen()
    session.add(fresh)
    await session.flush()
    identity.citizen_id = fresh.id
    moved = await session.execute(
        update(WorkOrder)
        .where(WorkOrder.channel_identity_id == identity_id, WorkOrder.citizen_id == old_id)
        .values(citizen_id=fresh.id)
    )
    audit.record(
        session, f"unlink:{by}", f"identity:{identity_id} citizen:{old_id}->{fresh.id}", agent_id
    )
    await session.flush()
    count = moved.rowcount  # type: ignore[attr-defined]  # an UPDATE gives a CursorResult
    return Unlinked(identity_id, old_id, fresh.id, count or 0)


async def forget_phone(session: AsyncSession, citizen_id: int, *, by: str = "citizen") -> bool:
    """Drop the citizen's verified phone (no later verification merges into it); True if
    there was one. Audited as `forget_phone:<by>`."""
    citizen = await session.get_one(Citizen, citizen_id, with_for_update=True)
    if citizen.phone_verified_at is None:
        return False
    citizen.phone = citizen.phone_hash = citizen.phone_verified_at = None
    audit.record(session, f"forget_phone:{by}", f"citizen:{citizen_id}")
    await session.flush()
    return True
