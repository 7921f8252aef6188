"""SQLAlchemy 2 models of the whole domain. Internal integer ids never leave the store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from store import sealed
from store.sealed import SealedRow, SealedText


def utcnow() -> datetime:
    """Timezone-aware now in UTC; every timestamp in the store is UTC."""
    return datetime.now(UTC)


def new_public_id() -> str:
    """An unguessable id that may be shown outside the store."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """DateTime that always comes back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with a naming convention so Alembic migrations are stable."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Citizen(Base, SealedRow):
    """A person who wrote to 12345, possibly through several channels.

    `phone_*` is the phone this citizen proved by an SMS one-time code (`phone_verified_at`);
    a phone typed into a work-order form stays on that order and never reaches the citizen.
    Name and phone are stored encrypted (store/sealed.py) under the row's `public_id`.
    """

    __tablename__ = "citizen"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    name = SealedText("name_enc")
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone = SealedText("phone_enc")
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_verified_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="citizen")


class ChannelIdentity(Base):
    """One address of a citizen on one channel (WeChat openid, Telegram chat, web session)."""

    __tablename__ = "channel_identity"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizen.id"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    last_inbound_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    citizen: Mapped[Citizen] = relationship(back_populates="identities")


class PhoneVerification(Base):
    """An SMS one-time code sent to prove a phone number, asked for by one channel identity.

    The code is kept only as a keyed hash; `attempts` counts every try (counted before the
    comparison, so parallel guesses cannot exceed the limit).
    """

    __tablename__ = "phone_verification"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_identity_id: Mapped[int] = mapped_column(ForeignKey("channel_identity.id"), index=True)
    phone_enc: Mapped[bytes] = mapped_column(LargeBinary)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column()
    verified_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    """The running chat of one channel identity; `public_id` is Rasa's sender id."""

    __tablename__ = "conversation"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    channel_identity_id: Mapped[int] = mapped_column(ForeignKey("channel_identity.id"), unique=True)
    failed_fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(default=utcnow)
    identity: Mapped[ChannelIdentity] = relationship()


class Message(Base, SealedRow):
    """One turn, stored before it is processed. `channel_message_id` dedupes retries.
    `text` is stored encrypted (store/sealed.py) under the row's `public_id`."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("conversation_id", "channel_message_id"),
        Index("ix_message_conversation_created", "conversation_id", "id"),
        Index("ix_message_unanswered", "status", "claimed_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id"))
    sender: Mapped[str] = mapped_column(String(8))  # citizen | bot | agent | system
    text_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    text = SealedText("text_enc", default="")
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # buttons, link, attachments
    channel_message_id: Mapped[str | None] = mapped_column(String(128))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    intent: Mapped[str | None] = mapped_column(String(96))
    confidence: Mapped[float | None] = mapped_column(Float)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)  # agent note, never sent
    status: Mapped[str] = mapped_column(String(12), default="received")  # received|processed|failed
    # A citizen message still `received` is being answered by whoever claimed it last
    # (store/claims.py); `tries` counts the claims, so the sweeper knows when to hand off.
    claimed_at: Mapped[datetime | None] = mapped_column()
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    """A console user: agent, supervisor or admin."""

    __tablename__ = "agent"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="agent")  # agent|supervisor|admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Handoff(Base):
    """A request for a human. States: pending, assigned, resolved, returned_to_bot, expired."""

    __tablename__ = "handoff"
    __table_args__ = (
        # At most one open hand-off per conversation, enforced by the database itself.
        Index(
            "uq_handoff_open_conversation",
            "conversation_id",
            unique=True,
            postgresql_where=text("state IN ('pending', 'assigned')"),
            sqlite_where=text("state IN ('pending', 'assigned')"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str] = mapped_column(String(32))  # request_human|fallback|rasa_down|claimed
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # slots, last intents
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    conversation: Mapped[Conversation] = relationship()


class HandoffEvent(Base):
    """Append-only history of a hand-off."""

    __tablename__ = "handoff_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoff.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Department(Base):
    """A government department that handles work orders."""

    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))


class Category(Base):
    """A node of the work-order taxonomy with its default department and deadlines."""

    __tablename__ = "category"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    response_days: Mapped[int] = mapped_column(Integer, default=2)
    result_days: Mapped[int] = mapped_column(Integer, default=15)


class WorkOrder(Base, SealedRow):
    """A 工单. `tracking_no` is the only id a citizen ever sees. Description, location, delay
    reason, contact name and phone are stored encrypted (store/sealed.py) under the tracking
    number."""

    __tablename__ = "work_order"
    __row_key__ = "tracking_no"
    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_no: Mapped[str] = mapped_column(String(32), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    kind: Mapped[str] = mapped_column(String(16), default="report")  # report|complain|suggest
    category_id: Mapped[int | None] = mapped_column(ForeignKey("category.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizen.id"), index=True)
    channel_identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel_identity.id"), index=True
    )
    description_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    description = SealedText("description_enc", default="")
    location_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    location = SealedText("location_enc")
    contact_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    contact_name = SealedText("contact_name_enc")
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone = SealedText("phone_enc")
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    response_due: Mapped[datetime | None] = mapped_column()
    result_due: Mapped[datetime | None] = mapped_column()
    supervision: Mapped[bool] = mapped_column(Boolean, default=False)
    delay_reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    delay_reason = SealedText("delay_reason_enc")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    events: Mapped[list[WorkOrderEvent]] = relationship(
        back_populates="work_order", order_by="WorkOrderEvent.id"
    )
    category: Mapped[Category | None] = relationship()
    department: Mapped[Department | None] = relationship()


class WorkOrderEvent(Base, SealedRow):
    """Append-only history of a work order: who, when, from-status, to-status, note (stored
    encrypted under the row's `public_id`)."""

    __tablename__ = "work_order_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_order.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="transition")
    # transition | supervision | delay | rating | note
    actor: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    note = SealedText("note_enc")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    work_order: Mapped[WorkOrder] = relationship(back_populates="events")


class Rating(Base, SealedRow):
    """The citizen's 评价 after 办结: satisfied, basically_satisfied or unsatisfied; the
    comment is stored encrypted under the row's `public_id`."""

    __tablename__ = "rating"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_order.id"), index=True)
    score: Mapped[str] = mapped_column(String(24))
    comment_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    comment = SealedText("comment_enc")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Outbox(Base):
    """Notifications written with the change that caused them, delivered at least once."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(48), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Backoff counts from the last attempt; after the retry period the row is given up on
    # (and shows on the supervisor board) instead of being tried again.
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    gave_up_at: Mapped[datetime | None] = mapped_column()


class AuditLog(Base):
    """Who saw or changed what: reveals of personal data, logins, reassignments, and every
    merge or split of citizens (`agent_id` is None when the citizen did it in a chat)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


sealed.listen(Base)
