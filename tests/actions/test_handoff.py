"""转人工 reaches the store's hand-off queue and tells the citizen what happens next."""

from __future__ import annotations

import json

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.handoff import ActionHandoff
from store.client import StoreClient
from store.handoff_context import unseal
from store.models import Handoff
from tests.actions.conftest import load_tracker, texts


async def test_request_human_opens_a_handoff_and_utters_the_queue_notice(
    store: StoreClient, sender: str
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandoff(store).run(
        dispatcher, load_tracker("request_human", sender=sender), {}
    )
    async with store.db.session() as s:
        handoffs = (await s.execute(select(Handoff))).scalars().all()
    assert [(h.state, h.reason) for h in handoffs] == [("pending", "request_human")]
    assert handoffs[0].context["last_intents"] == ["request_human"]
    assert texts(dispatcher) and texts(dispatcher)[-1]  # the store's notice, not silence
    assert {"event": "slot", "timestamp": None, "name": "phone", "value": None} in events


async def test_second_fallback_hands_off_with_reason_fallback(
    store: StoreClient, sender: str
) -> None:
    dispatcher = CollectingDispatcher()
    await ActionHandoff(store).run(dispatcher, load_tracker("nlu_fallback", sender=sender), {})
    async with store.db.session() as s:
        reasons = (await s.execute(select(Handoff.reason))).scalars().all()
    assert reasons == ["fallback"]
    assert "转接人工" in texts(dispatcher)[0]


async def test_form_slots_reach_the_agent_encrypted_at_rest(
    store: StoreClient, sender: str
) -> None:
    """What the citizen already told the form goes with the hand-off, but never in clear."""
    await ActionHandoff(store).run(
        CollectingDispatcher(), load_tracker("request_human_mid_form", sender=sender), {}
    )
    async with store.db.session() as s:
        handoff = (await s.execute(select(Handoff))).scalar_one()
    stored = json.dumps(handoff.context, ensure_ascii=False)
    for secret in ("13812345678", "王小明", "幸福路12号"):
        assert secret not in stored
    slots = unseal(handoff.context, store.cipher, handoff.conversation_id)["slots"]
    assert slots["phone"] == "13812345678"
    assert slots["contact_name"] == "王小明"
    assert slots["category"] == "urban"
