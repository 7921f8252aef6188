"""Write notifications in the same transaction as the change that causes them, and list the
status notices that did not reach a citizen's channel (the supervisor board)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.crypto import DataKeyError, PersonalDataCipher, associated_data
from store.models import ChannelIdentity, Conversation, Message, Outbox

# Topics the notifier understands.
WORK_ORDER_STATUS = "work_order.status"
HANDOFF_CHANGED = "handoff.changed"
AGENT_MESSAGE = "conversation.message"


NOTE_SEALED = "note_enc"


def _note_bound_to(payload: dict[str, Any]) -> bytes:
    return associated_data("outbox", NOTE_SEALED, f"{payload['tracking_no']}:{payload['what']}")


def seal_note(payload: dict[str, Any], note: str | None, cipher: PersonalDataCipher | None) -> None:
    """Put `note` (a resolution text or delay reason an agent wrote: free text that may hold
    personal data) into `payload` encrypted, bound to the order and the event it tells of."""
    if not note:
        return
    if cipher is None:
        raise DataKeyError("no DATA_KEY to write a notice's note: open Database with a cipher")
    blob = cipher.encrypt(note, _note_bound_to(payload))
    payload[NOTE_SEALED] = base64.b64encode(blob).decode("ascii")


def note_of(payload: dict[str, Any], cipher: PersonalDataCipher) -> str | None:
    """The note of a notice, decrypted (notices written before notes were sealed: as stored)."""
    sealed = payload.get(NOTE_SEALED)
    if isinstance(sealed, str):
        return cipher.decrypt(base64.b64decode(sealed), _note_bound_to(payload))
    return payload.get("note")


def emit(session: AsyncSession, topic: str, payload: dict[str, Any]) -> Outbox:
    """Queue a notification; it is delivered only if the surrounding transaction commits."""
    row = Outbox(topic=topic, payload=payload)
    session.add(row)
    return row


@dataclass(frozen=True)
class UndeliveredNotice:
    """A status notice one of the citizen's channels has not taken.

    `state`: `retrying` (a transient failure; the notifier tries again), `given_up` (still
    failing when the retry period ended) or `refused` (refused for good: a blocked bot, an
    unsubscribed follower, no template for a closed window).
    """

    outbox_id: int
    tracking_no: str
    what: str  # the status or event the notice told of
    channel: str
    reason: str
    state: str
    written_at: datetime  # when the status changed
    attempts: int


def _outbox_id(message: Message) -> int:
    """The outbox row id in a notifier message's key `outbox:<id>`."""
    key = message.channel_message_id or ""
    return int(key.split(":")[1])


async def undelivered_notices(session: AsyncSession, limit: int = 100) -> list[UndeliveredNotice]:
    """Status notices not delivered on some channel, newest first: each failed message the
    notifier stored (Router.push key `outbox:<id>`) with its outbox row's state."""
    rows = (
        await session.execute(
            select(Message, ChannelIdentity.channel)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .join(ChannelIdentity, Conversation.channel_identity_id == ChannelIdentity.id)
            .where(
                Message.sender == "system",
                Message.status == "failed",
                Message.channel_message_id.like("outbox:%"),
            )
            .order_by(Message.id.desc())
            .limit(limit)
        )
    ).all()
    ids = {_outbox_id(m) for m, _ in rows}
    outbox = {
        r.id: r for r in (await session.execute(select(Outbox).where(Outbox.id.in_(ids)))).scalars()
    }
    notices = []
    for message, channel in rows:
        row = outbox.get(_outbox_id(message))
        if row is None or row.topic != WORK_ORDER_STATUS:
            continue
        if row.gave_up_at is not None:
            state = "given_up"
        elif row.delivered_at is not None:
            state = "refused"
        else:
            state = "retrying"
        notices.append(
            UndeliveredNotice(
                outbox_id=row.id,
                tracking_no=str(row.payload.get("tracking_no", "")),
                what=str(row.payload.get("what") or row.payload.get("status") or ""),
                channel=channel,
                reason=str((message.payload or {}).get("undelivered", "")),
                state=state,
                written_at=row.created_at,
                attempts=row.attempts,
            )
        )
    return notices
