"""The gateway masks phone numbers before Rasa (138****5678), yet the form files the order with
the real mobile: the action server takes it from the citizen's stored (encrypted) message of
that turn, and only the masked number goes back into Rasa's slots."""

from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.work_order_form import ActionSubmitWorkOrder, ValidateWorkOrderForm
from store import conversations
from store.client import StoreClient
from store.models import WorkOrder
from tests.actions.conftest import load_tracker, new_sender, texts
from tests.actions.test_work_order_form import a_category, slot_events


async def _typed(store: StoreClient, external_id: str, text: str) -> int:
    """A citizen message as the gateway stores it; returns its id (the turn's metadata)."""
    async with store.db.session() as s:
        conv = await conversations.ensure_conversation(s, "rest", external_id)
        return (await conversations.store_inbound(s, conv, text, None)).id


async def test_masked_answer_is_checked_against_the_stored_message(
    store: StoreClient, domain: dict
) -> None:
    sender = await new_sender(store, "phone-1")
    message_id = await _typed(store, "phone-1", "手机号是138 1234 5678")
    tracker = load_tracker(
        "form_phone_masked", sender=sender, category=await a_category(store), message_id=message_id
    )
    dispatcher = CollectingDispatcher()
    events = await ValidateWorkOrderForm(store).run(dispatcher, tracker, domain)
    assert slot_events(events)["phone"] == "138****5678"
    assert texts(dispatcher) == []
    assert "13812345678" not in str(events)


async def test_masked_answer_of_another_conversation_is_refused(
    store: StoreClient, domain: dict
) -> None:
    sender = await new_sender(store, "phone-2")
    elsewhere = await _typed(store, "someone-else", "我的手机13812345678")
    tracker = load_tracker(
        "form_phone_masked", sender=sender, category=await a_category(store), message_id=elsewhere
    )
    dispatcher = CollectingDispatcher()
    events = await ValidateWorkOrderForm(store).run(dispatcher, tracker, domain)
    assert slot_events(events)["phone"] is None
    assert "11位手机号" in texts(dispatcher)[0]


async def test_a_story_with_a_masked_mobile_fills_the_phone_only_when_this_citizen_typed_it(
    store: StoreClient, domain: dict
) -> None:
    story = "翠竹苑小区4栋电梯坏了一个礼拜没人修，我姓王，手机{}，请尽快处理"
    typist, stranger = await new_sender(store, "phone-4"), await new_sender(store, "phone-5")
    typed = await _typed(store, "phone-4", story.format("13812340001"))
    # The stranger's turn points at the typist's message: not theirs, so no phone.
    for sender, expected in ((typist, "138****0001"), (stranger, None)):
        tracker = load_tracker(
            "form_activated_with_story",
            sender=sender,
            description=story.format("138****0001"),  # as the gateway sends it to Rasa
            message_id=typed,
        )
        events = await ValidateWorkOrderForm(store).run(CollectingDispatcher(), tracker, domain)
        assert slot_events(events).get("phone") == expected
        assert "13812340001" not in str(events)


async def test_order_is_filed_with_the_real_mobile_behind_the_masked_slot(
    store: StoreClient,
) -> None:
    sender = await new_sender(store, "phone-3")
    await _typed(store, "phone-3", "联系电话13912345678，白天都在")
    tracker = load_tracker("form_confirmed", sender=sender, category=await a_category(store))
    tracker.slots["phone"] = "139****5678"
    dispatcher = CollectingDispatcher()
    await ActionSubmitWorkOrder(store).run(dispatcher, tracker, {})
    assert "已为您登记工单" in texts(dispatcher)[0]
    async with store.db.session() as s:
        order = (await s.execute(select(WorkOrder))).scalar_one()
    assert order.phone == "13912345678"
