"""The one client the action server uses for the ticket backend (work orders, hand-offs).

Actions stay thin: they parse the tracker and call this. `sender_id` is Rasa's sender id,
which is the gateway's `Conversation.public_id`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from config import get_settings
from store import assignment, conversations, handoffs, lookup, work_orders
from store.bus import Bus, create_bus
from store.crypto import PersonalDataCipher
from store.db import Database
from store.handoff_context import seal
from store.masking import masked_mobile_in
from store.models import Category, ChannelIdentity, Conversation, utcnow
from store.queue_notice import queue_notice
from store.service_hours import ServiceHours
from store.views import WorkOrderView, view_of


@dataclass(frozen=True)
class CategoryProposal:
    """The category proposed from the citizen's own words."""

    code: str
    name: str
    confidence: float
    confident: bool = False
    """True when the classifier is sure enough to fill the category without asking."""


@dataclass(frozen=True)
class LookupResult:
    """`order` only when the requester may see it; the other flags say what to tell them."""

    order: WorkOrderView | None
    refused: bool = False
    malformed: bool = False
    needs_phone: bool = False
    number_closed: bool = False  # refused by the per-number limit (up to 24 h)


@dataclass(frozen=True)
class HandoffTicket:
    """What to tell a citizen who asked for a human."""

    notice: str
    buttons: list[tuple[str, str]]


class StoreClient:
    """Async access to the store for actions; one instance per action-server process."""

    def __init__(self, db: Database, bus: Bus, cipher: PersonalDataCipher | None = None) -> None:
        """`cipher` defaults to the database's (the DATA_KEY that also seals free text)."""
        cipher = cipher or db.cipher
        if cipher is None:
            raise ValueError("the action server's store needs the DATA_KEY cipher")
        self.db = db
        self.bus = bus
        self.cipher = cipher

    @classmethod
    def from_env(cls) -> StoreClient:
        """Build from DATABASE_URL, REDIS_URL and DATA_KEY."""
        settings = get_settings()
        cipher = PersonalDataCipher(settings.data_key.get_secret_value())
        return cls(
            Database(settings.database_url, cipher=cipher),
            create_bus(settings.redis_url, settings.redis_prefix),
        )

    async def propose_category(self, text: str) -> CategoryProposal:
        """The most likely top-level category for a description (computed in a worker
        thread: the first call trains the model, and e5 embedding takes ~50-150 ms)."""
        from store.classify import get_classifier

        proposal = await asyncio.to_thread(lambda: get_classifier().propose(text))
        return CategoryProposal(
            proposal.code, proposal.name, proposal.confidence, not proposal.needs_confirmation
        )

    async def categories(self) -> list[tuple[str, str]]:
        """Top-level categories as (code, name)."""
        async with self.db.session() as s:
            rows = await s.execute(
                select(Category.code, Category.name)
                .where(Category.parent_id.is_(None))
                .order_by(Category.id)
            )
            return [(code, name) for code, name in rows]

    async def create_work_order(
        self,
        *,
        sender_id: str,
        idempotency_key: str,
        kind: str,
        category_code: str,
        description: str,
        location: str,
        contact_name: str,
        phone: str,
    ) -> WorkOrderView:
        """File a work order for this conversation's citizen (idempotent on the key).

        `phone` may be masked (`138****5678`, all Rasa ever sees): the number is then taken
        from what this conversation's citizen typed (`unmask_phone`)."""
        async with self.db.session() as s:
            conv = await conversations.conversation_by_public_id(s, sender_id)
            if conv is not None and masked_mobile_in(phone):
                masked = masked_mobile_in(phone) or ""
                phone = await conversations.mobile_behind(s, conv.id, masked) or phone
            order = await work_orders.create_work_order(
                s,
                self.cipher,
                conversation=conv,
                kind=kind,
                category_code=category_code,
                description=description,
                location=location,
                contact_name=contact_name,
                phone=phone,
                actor="bot",
                idempotency_key=idempotency_key,
            )
            return view_of(order, self.cipher)

    async def unmask_phone(
        self, *, sender_id: str, masked: str, message_id: int | None = None
    ) -> str | None:
        """The mobile number behind `masked` that this conversation's citizen typed (in
        message `message_id`, the turn's stored message, or a recent one); None if none."""
        async with self.db.session() as s:
            conv = await conversations.conversation_by_public_id(s, sender_id)
            if conv is None:
                return None
            return await conversations.mobile_behind(s, conv.id, masked, message_id)

    async def lookup(
        self, *, tracking_no: str, phone_last4: str | None, sender_id: str
    ) -> LookupResult:
        """Rate-limited lookup by tracking number (+ phone digits unless the citizen filed it)."""
        async with self.db.session() as s:
            citizen_id = await self._citizen_id(s, sender_id)
            outcome = await lookup.lookup(
                s,
                self.bus,
                self.cipher,
                raw_tracking_no=tracking_no,
                phone_last4=phone_last4,
                requester_keys=[f"sender:{sender_id}"],
                citizen_id=citizen_id,
            )
            view = view_of(outcome.order, self.cipher) if outcome.order else None
        return LookupResult(
            view, outcome.refused, outcome.malformed, outcome.needs_phone, outcome.number_closed
        )

    async def my_work_orders(self, sender_id: str) -> list[WorkOrderView]:
        """Orders filed by this citizen through any linked channel."""
        async with self.db.session() as s:
            citizen_id = await self._citizen_id(s, sender_id)
            if citizen_id is None:
                return []
            orders = await work_orders.orders_for_citizen(s, citizen_id)
            return [view_of(o, self.cipher) for o in orders]

    async def request_handoff(
        self, *, sender_id: str, reason: str, context: dict[str, Any]
    ) -> HandoffTicket:
        """Open (or keep) a hand-off for this conversation and say what happens next."""
        async with self.db.session() as s:
            conv = await conversations.conversation_by_public_id(s, sender_id)
            if conv is None:
                return HandoffTicket("抱歉，暂时无法转接人工，请稍后再试。", [])
            handoff = await handoffs.request(s, conv, reason, seal(context, self.cipher, conv.id))
            settings = get_settings()
            hours = ServiceHours.parse(settings.service_hours, settings.timezone)
            now = utcnow()
            state = await assignment.queue_state(s, handoff, now, hours)
            assignment.mark_noticed(handoff)  # the console's watcher must not tell them twice
            text, buttons = queue_notice(state, now, hours.tz)
            return HandoffTicket(text, list(buttons))

    async def rate(self, *, sender_id: str, tracking_no: str, score: str) -> WorkOrderView | None:
        """The citizen's satisfaction; only the citizen who filed the order may rate it."""
        from store.tracking import normalize

        number = normalize(tracking_no)
        if number is None:
            return None
        async with self.db.session() as s:
            citizen_id = await self._citizen_id(s, sender_id)
            order = await work_orders.by_tracking_no(s, number)
            if order is None or citizen_id is None or order.citizen_id != citizen_id:
                return None
            try:
                order = await work_orders.rate(s, order, score, actor="citizen")
            except (work_orders.InvalidWorkOrder, ValueError):
                return None
            return view_of(order, self.cipher)

    async def _citizen_id(self, session: Any, sender_id: str) -> int | None:
        stmt = (
            select(ChannelIdentity.citizen_id)
            .join(Conversation, Conversation.channel_identity_id == ChannelIdentity.id)
            .where(Conversation.public_id == sender_id)
        )
        return (await session.execute(stmt)).scalar_one_or_none()

    async def close(self) -> None:
        """Release the database pool and the bus."""
        await self.bus.close()
        await self.db.close()


def warm_up_classifier() -> None:
    """Train the category classifier in the background at start-up, so the first citizen's
    form turn does not pay for it inside the gateway's reply budget."""
    import threading

    from store.classify import get_classifier

    threading.Thread(target=get_classifier, name="classifier-warm-up", daemon=True).start()
