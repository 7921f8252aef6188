"""Work orders: the 12345 loop, idempotent filing, deadlines, safe lookup, rating, supervision.

Runs on SQLite and the real PostgreSQL; the rate limit runs on the in-memory bus and real Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from store import lifecycle, work_orders
from store import lookup as lookup_rules
from store.bus import MemoryBus, RedisBus
from store.conversations import ensure_conversation
from store.crypto import PersonalDataCipher, associated_data
from store.lookup import lookup
from store.models import Outbox, WorkOrder, WorkOrderEvent
from store.tracking import normalize
from store.views import view_of
from tests.builders import file_order
from tests.conftest import REDIS_URL, new_data_key


@pytest.fixture
def cipher() -> PersonalDataCipher:
    return PersonalDataCipher(new_data_key())


async def _file(db, cipher, *, key: str | None = None, phone="13812345678", sender="wx-1"):
    async with db.session() as s:
        conv = await ensure_conversation(s, "wechat", sender)
        return await file_order(
            s,
            cipher,
            conv,
            description="小区门口路灯坏了一个月了，晚上很黑",
            location="某某路12号",
            contact_name="张女士",
            phone=phone,
            idempotency_key=key,
        )


async def test_filing_gives_a_valid_tracking_number_and_deadlines(db, cipher) -> None:
    order = await _file(db, cipher)
    assert normalize(order.tracking_no) == order.tracking_no
    assert order.status == "received"
    assert order.response_due < order.result_due
    assert order.created_at < order.response_due
    view = view_of(order, cipher)
    assert view.phone_masked == "138****5678"
    assert view.category_name == "城乡建设" and view.department_name
    assert [t.label for t in view.timeline] == ["已受理"]


async def test_phone_is_encrypted_at_rest(db, cipher) -> None:
    order = await _file(db, cipher)
    async with db.session() as s:
        raw = (
            await s.execute(select(WorkOrder.phone_enc).where(WorkOrder.id == order.id))
        ).scalar()
    assert b"13812345678" not in raw
    where = associated_data("work_order", "phone_enc", order.tracking_no)
    assert db.cipher.decrypt(raw, where) == "13812345678"


async def test_same_idempotency_key_files_one_order(db, cipher) -> None:
    a = await _file(db, cipher, key="conv-1:1700000000.5")
    b = await _file(db, cipher, key="conv-1:1700000000.5")
    assert a.tracking_no == b.tracking_no
    async with db.session() as s:
        assert (await s.execute(select(func.count(WorkOrder.id)))).scalar() == 1


async def test_invalid_phone_is_refused_and_nothing_is_stored(db, cipher) -> None:
    with pytest.raises(work_orders.InvalidWorkOrder, match="手机号码"):
        await _file(db, cipher, phone="12345")
    async with db.session() as s:
        assert (await s.execute(select(func.count(WorkOrder.id)))).scalar() == 0


async def test_full_loop_writes_one_event_and_one_notification_per_step(db, cipher) -> None:
    order = await _file(db, cipher)
    steps = ["dispatched", "returned", "dispatched", "in_progress", "resolved", "callback"]
    async with db.session() as s:
        o = await work_orders.by_id(s, order.id)
        for status in steps:
            await lifecycle.transition(s, o, status, "agent:li")
        o = await work_orders.rate(s, o, "unsatisfied", actor="citizen")
        assert o.status == "reopened"
    async with db.session() as s:
        events = (await s.execute(select(WorkOrderEvent).order_by(WorkOrderEvent.id))).scalars()
        transitions = [(e.from_status, e.to_status) for e in events if e.kind == "transition"]
        pushes = (await s.execute(select(func.count(Outbox.id)))).scalar()
    assert transitions[-1] == ("callback", "reopened")
    assert len(transitions) == 1 + len(steps) + 1
    assert pushes == len(steps) + 1


async def test_invalid_transition_raises_and_changes_nothing(db, cipher) -> None:
    order = await _file(db, cipher)
    with pytest.raises(lifecycle.InvalidTransition):
        async with db.session() as s:
            o = await work_orders.by_id(s, order.id)
            await lifecycle.transition(s, o, "resolved", "agent:li")
    async with db.session() as s:
        o = await work_orders.by_id(s, order.id)
        assert o.status == "received"
        assert len(o.events) == 1


async def test_overdue_orders_are_flagged_for_supervision_once(db, cipher) -> None:
    order = await _file(db, cipher)
    later = datetime.now(UTC) + timedelta(days=60)
    async with db.session() as s:
        assert await work_orders.flag_overdue(s, later) == [order.tracking_no]
        assert await work_orders.flag_overdue(s, later) == []
        o = await work_orders.by_id(s, order.id)
        assert o.supervision and o.events[-1].kind == "supervision"
        assert "督办" in view_of(o, cipher).summary_zh()


async def test_delay_reason_is_shown_to_the_citizen(db, cipher) -> None:
    order = await _file(db, cipher)
    async with db.session() as s:
        o = await work_orders.by_id(s, order.id)
        await work_orders.set_delay_reason(s, o, "需协调供电部门现场勘查", "agent:li")
        o = await work_orders.by_id(s, order.id)
    assert "需协调供电部门现场勘查" in view_of(o, cipher).summary_zh()


@pytest.fixture(params=["memory", "redis"])
async def bus(request):
    if request.param == "memory":
        yield MemoryBus()
        return
    b = RedisBus(REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    yield b
    await b.close()


async def test_lookup_with_digits_or_same_citizen(db, cipher, bus) -> None:
    order = await _file(db, cipher)
    async with db.session() as s:
        ok = await lookup(
            s,
            bus,
            cipher,
            raw_tracking_no=order.tracking_no.lower(),
            phone_last4="5678",
            requester_keys=["ip:1"],
        )
        assert ok.order is not None and ok.order.id == order.id
        conv = await ensure_conversation(s, "wechat", "wx-1")
        from store.conversations import identity_of

        own = await lookup(
            s,
            bus,
            cipher,
            raw_tracking_no=order.tracking_no,
            phone_last4=None,
            requester_keys=["sender:x"],
            citizen_id=(await identity_of(s, conv)).citizen_id,
        )
        assert own.order is not None
        stranger = await lookup(
            s,
            bus,
            cipher,
            raw_tracking_no=order.tracking_no,
            phone_last4=None,
            requester_keys=["sender:y"],
            citizen_id=None,
        )
        assert stranger.order is None and stranger.needs_phone


async def test_unknown_and_wrong_digits_look_the_same_then_get_refused(db, cipher, bus) -> None:
    order = await _file(db, cipher)
    from store.tracking import new_tracking_no

    unknown = new_tracking_no(datetime.now(UTC).date())
    async with db.session() as s:
        a = await lookup(
            s, bus, cipher, raw_tracking_no=unknown, phone_last4="5678", requester_keys=["ip:9"]
        )
        b = await lookup(
            s,
            bus,
            cipher,
            raw_tracking_no=order.tracking_no,
            phone_last4="0000",
            requester_keys=["ip:9"],
        )
        assert (a.order, a.refused, a.needs_phone) == (b.order, b.refused, b.needs_phone)
        for _ in range(3):
            await lookup(
                s,
                bus,
                cipher,
                raw_tracking_no=order.tracking_no,
                phone_last4="1111",
                requester_keys=["ip:9"],
            )
        # Five failures from ip:9: even the right digits are refused there now.
        right = await lookup(
            s,
            bus,
            cipher,
            raw_tracking_no=order.tracking_no,
            phone_last4="5678",
            requester_keys=["ip:9"],
        )
        assert right.order is None and right.refused
        # Another requester still gets in: the number has had only 4 failures.
        other = await lookup(
            s,
            bus,
            cipher,
            raw_tracking_no=order.tracking_no,
            phone_last4="5678",
            requester_keys=["ip:10"],
        )
        assert other.order is not None


async def _guess(db, bus, cipher, number: str, digits: str, key: str, citizen_id=None):
    """One lookup in its own transaction (as one web request or one chat turn would)."""
    async with db.session() as s:
        return await lookup(
            s,
            bus,
            cipher,
            raw_tracking_no=number,
            phone_last4=digits,
            requester_keys=[key],
            citizen_id=citizen_id,
        )


async def _citizen_of_filer(db) -> int:
    from store.conversations import identity_of

    async with db.session() as s:
        conv = await ensure_conversation(s, "wechat", "wx-1")
        return (await identity_of(s, conv)).citizen_id


async def test_parallel_guesses_from_one_requester_stop_at_the_limit(db, cipher, bus) -> None:
    """300 guesses at once, the right digits last: only 5 are compared, nothing is revealed.

    300 is more than the Redis bus's connection pool, so on Redis too the last guess is counted
    after most others (the first hundred connect in any order).
    """
    order = await _file(db, cipher)
    guesses = [*[f"{i:04d}" for i in range(300) if f"{i:04d}" != "5678"][:299], "5678"]
    outcomes = await asyncio.gather(
        *(_guess(db, bus, cipher, order.tracking_no, d, "ip:203.0.113.7") for d in guesses)
    )
    assert all(o.order is None for o in outcomes)
    compared = [o for o in outcomes if not o.refused]
    assert len(compared) == lookup_rules.REQUESTER_LIMIT.max_attempts
    # The requester has used up its window: the right digits are refused now too.
    after = await _guess(db, bus, cipher, order.tracking_no, "5678", "ip:203.0.113.7")
    assert after.refused and after.order is None


async def test_parallel_guesses_from_many_requesters_stop_at_the_number_limit(
    db, cipher, bus
) -> None:
    """300 throw-away requesters, one guess each, the right digits last: the number closes."""
    order = await _file(db, cipher)
    guesses = [*[f"{i:04d}" for i in range(300) if f"{i:04d}" != "5678"][:299], "5678"]
    outcomes = await asyncio.gather(
        *(
            _guess(db, bus, cipher, order.tracking_no, d, f"sender:throwaway-{i}")
            for i, d in enumerate(guesses)
        )
    )
    assert all(o.order is None for o in outcomes)
    compared = [o for o in outcomes if not o.refused]
    assert len(compared) == lookup_rules.NUMBER_LIMIT.max_attempts
    # The digits path of that number is closed now, but its owner still gets in.
    stranger = await _guess(db, bus, cipher, order.tracking_no, "5678", "ip:198.51.100.1")
    assert stranger.refused and stranger.order is None
    owner = await _guess(
        db, bus, cipher, order.tracking_no, None, "sender:own", await _citizen_of_filer(db)
    )
    assert owner.order is not None and owner.order.id == order.id


async def test_a_guesser_blocks_itself_not_the_owner(db, cipher, bus) -> None:
    order = await _file(db, cipher)
    for i in range(2 * lookup_rules.REQUESTER_LIMIT.max_attempts):
        await _guess(db, bus, cipher, order.tracking_no, f"{i:04d}", "ip:192.0.2.66")
    blocked = await _guess(db, bus, cipher, order.tracking_no, "5678", "ip:192.0.2.66")
    assert blocked.refused and blocked.order is None
    # The owner: through the conversation that filed it (with or without digits) …
    citizen_id = await _citizen_of_filer(db)
    for digits in (None, "5678", "0000"):
        own = await _guess(db, bus, cipher, order.tracking_no, digits, "sender:own", citizen_id)
        assert own.order is not None and own.order.id == order.id
    # … or with the right digits from any requester that is not the guesser.
    page = await _guess(db, bus, cipher, order.tracking_no, "5678", "ip:192.0.2.10")
    assert page.order is not None and not page.refused


async def test_right_digits_cost_nothing_but_do_not_wipe_failures(db, cipher, bus) -> None:
    order = await _file(db, cipher)
    limit = lookup_rules.REQUESTER_LIMIT.max_attempts
    for _ in range(limit + 3):  # an owner checking the page again and again
        ok = await _guess(db, bus, cipher, order.tracking_no, "5678", "ip:192.0.2.20")
        assert ok.order is not None
    other = await _file(db, cipher, phone="13900001111", sender="wx-2")
    for i in range(limit - 1):
        await _guess(db, bus, cipher, other.tracking_no, f"{i:04d}", "ip:192.0.2.21")
    # A right answer on a number the requester knows does not reset its wrong guesses.
    assert (await _guess(db, bus, cipher, order.tracking_no, "5678", "ip:192.0.2.21")).order
    await _guess(db, bus, cipher, other.tracking_no, "0999", "ip:192.0.2.21")
    last = await _guess(db, bus, cipher, other.tracking_no, "1111", "ip:192.0.2.21")
    assert last.refused and last.order is None


async def test_typo_in_tracking_number_is_caught_before_the_database(db, cipher, bus) -> None:
    order = await _file(db, cipher)
    typo = (
        order.tracking_no[:-2]
        + ("0" if order.tracking_no[-2] != "0" else "1")
        + order.tracking_no[-1]
    )
    async with db.session() as s:
        out = await lookup(
            s, bus, cipher, raw_tracking_no=typo, phone_last4="5678", requester_keys=["ip:2"]
        )
    assert out.malformed and out.order is None and not out.refused
