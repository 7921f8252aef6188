"""One citizen across channels: merging the citizens behind several channel identities.

A merge moves every ChannelIdentity and WorkOrder of one citizen to another and removes the
emptied citizen. The older citizen (created first) always survives, so the result does not
depend on which channel asked; merging twice changes nothing.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import ChannelIdentity, Citizen, WorkOrder


async def merge_citizens(session: AsyncSession, a_id: int, b_id: int) -> int:
    """Merge citizens `a_id` and `b_id` into the older one; return the survivor's id."""
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
    for attribute in ("name", "phone", "phone_hash"):
        if getattr(keep, attribute) is None and getattr(gone, attribute) is not None:
            setattr(keep, attribute, getattr(gone, attribute))
    await session.flush()
    try:
        async with session.begin_nested():
            await session.execute(delete(Citizen).where(Citizen.id == gone_id))
    except IntegrityError:
        pass  # something else still points at it; an empty citizen is harmless
    return keep_id


async def link_identity(session: AsyncSession, identity_id: int, citizen_id: int) -> int:
    """Make the citizen of `identity_id` and `citizen_id` one citizen; return the survivor."""
    identity = await session.get_one(ChannelIdentity, identity_id)
    return await merge_citizens(session, identity.citizen_id, citizen_id)


async def linked_channels(session: AsyncSession, citizen_id: int) -> list[str]:
    """The channels (sorted, distinct) through which `citizen_id` writes to 12345."""
    stmt = (
        select(ChannelIdentity.channel)
        .where(ChannelIdentity.citizen_id == citizen_id)
        .distinct()
        .order_by(ChannelIdentity.channel)
    )
    return list((await session.execute(stmt)).scalars())


async def link_by_verified_phone(session: AsyncSession, citizen_id: int, phone_hash: str) -> int:
    """Merge every other citizen whose keyed phone hash is `phone_hash` with `citizen_id`.

    Called when a work order is filed with a phone number: the same (verified) phone means the
    same person. Records the hash on the survivor and returns the survivor's id.
    """
    stmt = select(Citizen.id).where(Citizen.phone_hash == phone_hash, Citizen.id != citizen_id)
    survivor = citizen_id
    for other in sorted((await session.execute(stmt)).scalars()):
        survivor = await merge_citizens(session, survivor, other)
    citizen = await session.get_one(Citizen, survivor)
    if citizen.phone_hash is None:
        citizen.phone_hash = phone_hash
        await session.flush()
    return survivor
