"""Lookup by number + last 4 digits, the same answer for unknown and wrong, limits, rating."""

from __future__ import annotations

from datetime import date

from rasa_sdk.executor import CollectingDispatcher

from actions.lookup import (
    BAD_NUMBER,
    NOT_FOUND,
    NUMBER_CLOSED,
    REFUSED,
    ActionLookupWorkOrder,
    ActionMyWorkOrders,
)
from actions.rating import ActionRate
from store import lifecycle, work_orders
from store.client import StoreClient
from store.lookup import NUMBER_LIMIT, REQUESTER_LIMIT
from store.tracking import new_tracking_no
from tests.actions.conftest import load_tracker, new_sender, texts


async def file_order(store: StoreClient, sender: str) -> str:
    code = (await store.categories())[0][0]
    view = await store.create_work_order(
        sender_id=sender,
        idempotency_key=f"test-{sender}",
        kind="complain",
        category_code=code,
        description="楼下烧烤店每天营业到凌晨两点",
        location="阳光小区5号楼",
        contact_name="王女士",
        phone="13812345678",
    )
    return view.tracking_no


async def lookup(store: StoreClient, tracker_name: str, **values: str) -> tuple[list, list[str]]:
    dispatcher = CollectingDispatcher()
    events = await ActionLookupWorkOrder(store).run(
        dispatcher, load_tracker(tracker_name, **values), {}
    )
    return events, texts(dispatcher)


async def test_filer_sees_the_status_without_digits(store: StoreClient, sender: str) -> None:
    number = await file_order(store, sender)
    _, said = await lookup(store, "lookup_number", sender=sender, tracking=number)
    assert number in said[0] and "已受理" in said[0]


async def test_someone_else_is_asked_for_the_digits_then_sees_it(
    store: StoreClient, sender: str
) -> None:
    number = await file_order(store, sender)
    other = await new_sender(store, "someone-else")
    events, said = await lookup(store, "lookup_number", sender=other, tracking=number)
    assert "后4位" in said[0] and number not in said[0]
    assert {"event": "slot", "timestamp": None, "name": "lookup_pending", "value": True} in events
    _, said = await lookup(store, "lookup_digits", sender=other, tracking=number, last4="5678")
    assert "已受理" in said[0]


async def test_unknown_number_and_wrong_digits_get_the_same_answer(
    store: StoreClient, sender: str
) -> None:
    number = await file_order(store, sender)
    other = await new_sender(store, "someone-else")
    unknown = new_tracking_no(date(2026, 1, 5))
    _, wrong = await lookup(store, "lookup_digits", sender=other, tracking=number, last4="0000")
    _, missing = await lookup(store, "lookup_digits", sender=other, tracking=unknown, last4="5678")
    assert wrong == missing == [NOT_FOUND]


async def test_mistyped_number_is_caught_by_the_check_character(
    store: StoreClient, sender: str
) -> None:
    number = await file_order(store, sender)
    last = number[-1]
    typo = number[:-1] + ("0" if last != "0" else "1")
    _, said = await lookup(store, "lookup_number", sender=sender, tracking=typo)
    assert said == [BAD_NUMBER]


async def test_repeated_failures_are_refused(store: StoreClient, sender: str) -> None:
    number = await file_order(store, sender)
    other = await new_sender(store, "guesser")
    answers = []
    for digits in ("0001", "0002", "0003", "0004", "0005", "0006"):
        _, said = await lookup(store, "lookup_digits", sender=other, tracking=number, last4=digits)
        answers.append(said[0])
    assert answers[-1] == REFUSED
    _, said = await lookup(store, "lookup_digits", sender=other, tracking=number, last4="5678")
    assert said == [REFUSED]  # even the right digits, until the block expires


async def test_a_closed_number_is_not_promised_for_15_minutes(
    store: StoreClient, sender: str
) -> None:
    """Guessers in many chats close the number's digits path (up to 24 h): the next requester
    hears that, not "15 minutes", and the same for a number that does not exist."""
    number, unknown = await file_order(store, sender), new_tracking_no(date(2026, 1, 5))
    for target in (number, unknown):
        for i in range(NUMBER_LIMIT.max_attempts // REQUESTER_LIMIT.max_attempts):
            guesser = await new_sender(store, f"guesser-{target}-{i}")
            for _ in range(REQUESTER_LIMIT.max_attempts):
                _, said = await lookup(
                    store, "lookup_digits", sender=guesser, tracking=target, last4="0000"
                )
                assert said == [NOT_FOUND]
    late = await new_sender(store, "late")
    answers = [
        (await lookup(store, "lookup_digits", sender=late, tracking=t, last4="5678"))[1]
        for t in (number, unknown)
    ]
    assert answers == [[NUMBER_CLOSED], [NUMBER_CLOSED]]
    assert "15分钟" not in NUMBER_CLOSED
    _, said = await lookup(store, "lookup_number", sender=sender, tracking=number)
    assert "已受理" in said[0]  # the citizen who filed it still gets in


async def test_lookup_without_number_asks_for_it(store: StoreClient, sender: str) -> None:
    _, said = await lookup(store, "lookup_no_number", sender=sender)
    assert "工单编号" in said[0]


async def test_my_work_orders_lists_only_mine(store: StoreClient, sender: str) -> None:
    number = await file_order(store, sender)
    other = await new_sender(store, "someone-else")
    mine, theirs = CollectingDispatcher(), CollectingDispatcher()
    await ActionMyWorkOrders(store).run(mine, load_tracker("my_work_orders", sender=sender), {})
    await ActionMyWorkOrders(store).run(theirs, load_tracker("my_work_orders", sender=other), {})
    assert number in texts(mine)[0]
    assert number not in texts(theirs)[0] and "暂未查到" in texts(theirs)[0]


async def resolve(store: StoreClient, number: str) -> None:
    async with store.db.session() as s:
        order = await work_orders.by_tracking_no(s, number)
        for status in ("dispatched", "in_progress", "resolved"):
            await lifecycle.transition(s, order, status, "agent:test")


async def test_unsatisfied_rating_reopens_the_order(store: StoreClient, sender: str) -> None:
    number = await file_order(store, sender)
    await resolve(store, number)
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("rate_button", sender=sender, tracking=number, score="unsatisfied")
    await ActionRate(store).run(dispatcher, tracker, {})
    assert "重新交办" in texts(dispatcher)[0]
    async with store.db.session() as s:
        assert (await work_orders.by_tracking_no(s, number)).status == "reopened"


async def test_free_text_rating_uses_the_remembered_number(store: StoreClient, sender: str) -> None:
    number = await file_order(store, sender)
    await resolve(store, number)
    dispatcher = CollectingDispatcher()
    await ActionRate(store).run(
        dispatcher, load_tracker("rate_text", sender=sender, tracking=number), {}
    )
    async with store.db.session() as s:
        assert (await work_orders.by_tracking_no(s, number)).status == "reopened"


async def test_someone_else_cannot_rate(store: StoreClient, sender: str) -> None:
    number = await file_order(store, sender)
    await resolve(store, number)
    other = await new_sender(store, "someone-else")
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("rate_button", sender=other, tracking=number, score="satisfied")
    await ActionRate(store).run(dispatcher, tracker, {})
    assert "没有找到可以评价的工单" in texts(dispatcher)[0]
    async with store.db.session() as s:
        assert (await work_orders.by_tracking_no(s, number)).status == "resolved"
