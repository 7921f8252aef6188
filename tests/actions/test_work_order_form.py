"""The intake form: proposal of a category, re-ask on a bad phone, the confirmation step
(only 确认 files, anything unclear asks again), idempotent submission."""

from __future__ import annotations

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.work_order_form import (
    FORM_SLOTS,
    ActionAskCategory,
    ActionStartWorkOrder,
    ActionSubmitWorkOrder,
    ActionSummarizeWorkOrder,
    ValidateWorkOrderForm,
)
from store.bus import create_bus
from store.client import StoreClient
from store.crypto import PersonalDataCipher
from store.db import Database
from store.models import WorkOrder
from tests.actions.conftest import buttons, load_tracker, texts
from tests.conftest import REDIS_URL, new_data_key


def slot_events(events: list[dict]) -> dict[str, object]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def a_category(store: StoreClient) -> str:
    return (await store.categories())[0][0]


async def test_first_message_with_a_story_becomes_the_description(
    store: StoreClient, domain: dict
) -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionStartWorkOrder(store).run(
        dispatcher, load_tracker("complain_with_story", sender="s"), {}
    )
    slots = slot_events(events)
    assert slots["work_order_kind"] == "complain"
    assert slots["description"] == "我要投诉楼下烧烤店天天营业到凌晨两点吵得睡不着"
    assert "取消" in texts(dispatcher)[0]


async def test_bare_complaint_asks_for_the_description(store: StoreClient, domain: dict) -> None:
    events = await ActionStartWorkOrder(store).run(
        CollectingDispatcher(), load_tracker("complain_bare", sender="s"), {}
    )
    assert slot_events(events).get("description") is None


async def test_bad_phone_is_rejected_with_a_hint(store: StoreClient, domain: dict) -> None:
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("form_phone_bad", sender="s", category=await a_category(store))
    events = await ValidateWorkOrderForm(store).run(dispatcher, tracker, domain)
    assert slot_events(events)["phone"] is None
    assert "11位手机号" in texts(dispatcher)[0]


async def test_good_phone_is_normalised(store: StoreClient, domain: dict) -> None:
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("form_phone_good", sender="s", category=await a_category(store))
    events = await ValidateWorkOrderForm(store).run(dispatcher, tracker, domain)
    assert slot_events(events)["phone"] == "13812345678"
    assert texts(dispatcher) == []


async def test_yes_to_the_proposed_category_fills_it(store: StoreClient, domain: dict) -> None:
    code = await a_category(store)
    tracker = load_tracker("form_category_yes", sender="s", category=code)
    events = await ValidateWorkOrderForm(store).run(CollectingDispatcher(), tracker, domain)
    assert slot_events(events)["category"] == code


async def test_choose_other_shows_the_category_list_next(store: StoreClient, domain: dict) -> None:
    tracker = load_tracker("form_category_other", sender="s", category=await a_category(store))
    events = await ValidateWorkOrderForm(store).run(CollectingDispatcher(), tracker, domain)
    assert slot_events(events) == {"category": None, "category_choices_shown": True}


async def test_cancel_while_asked_for_the_category_fills_nothing(
    store: StoreClient, domain: dict
) -> None:
    tracker = load_tracker("form_category_cancel", sender="s", category=await a_category(store))
    events = await ValidateWorkOrderForm(store).run(CollectingDispatcher(), tracker, domain)
    assert slot_events(events) == {}  # the form rejects, the cancel rule takes over


async def test_summary_masks_the_phone(store: StoreClient, sender: str) -> None:
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("form_confirmed", sender=sender, category=await a_category(store))
    await ActionSummarizeWorkOrder(store).run(dispatcher, tracker, {})
    [text] = texts(dispatcher)
    assert "138****5678" in text and "13812345678" not in text
    payloads = [b["payload"] for b in buttons(dispatcher)]
    assert payloads[0] == "/affirm" and payloads[-1] == "/cancel"


async def test_submission_is_idempotent_and_gives_number_and_commitments(
    store: StoreClient, sender: str
) -> None:
    tracker = load_tracker("form_confirmed", sender=sender, category=await a_category(store))
    first, retry = CollectingDispatcher(), CollectingDispatcher()
    events = await ActionSubmitWorkOrder(store).run(first, tracker, {})
    await ActionSubmitWorkOrder(store).run(retry, tracker, {})  # Rasa retried the call
    async with store.db.session() as s:
        numbers = (await s.execute(select(WorkOrder.tracking_no))).scalars().all()
    assert len(numbers) == 1
    assert texts(first) == texts(retry)
    [text] = texts(first)
    assert numbers[0] in text
    assert "前与您联系" in text and "前给出办理结果" in text
    slots = slot_events(events)
    assert slots["phone"] is None and slots["contact_name"] is None
    assert slots["tracking_no"] == numbers[0]


async def test_a_new_confirmation_files_a_second_order(store: StoreClient, sender: str) -> None:
    code = await a_category(store)
    tracker = load_tracker("form_confirmed", sender=sender, category=code)
    await ActionSubmitWorkOrder(store).run(CollectingDispatcher(), tracker, {})
    later = load_tracker("form_confirmed", sender=sender, category=code)
    [confirming] = [e for e in later.events if e["event"] == "user"]
    confirming["timestamp"] += 60
    await ActionSubmitWorkOrder(store).run(CollectingDispatcher(), later, {})
    async with store.db.session() as s:
        assert (await s.execute(select(func.count(WorkOrder.id)))).scalar_one() == 2


async def test_category_list_offers_every_top_level_category(store: StoreClient) -> None:
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("form_category_other", sender="s", category=await a_category(store))
    tracker.slots["category_choices_shown"] = True
    events = await ActionAskCategory(store).run(dispatcher, tracker, {})
    categories = await store.categories()
    assert [b["title"] for b in buttons(dispatcher)] == [name for _, name in categories]
    assert buttons(dispatcher)[0]["payload"] == f'/affirm{{"category":"{categories[0][0]}"}}'
    assert slot_events(events) == {"category_choices_shown": True}


async def test_category_is_proposed_from_the_description(store: StoreClient) -> None:
    pytest.importorskip("store.classify")
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("form_category_other", sender="s", category=None)
    events = await ActionAskCategory(store).run(dispatcher, tracker, {})
    [text] = texts(dispatcher)
    assert text.startswith("您反映的问题属于「") and text.endswith("」吗？")
    assert [b["payload"] for b in buttons(dispatcher)] == ["/affirm", "/deny"]
    assert slot_events(events)["category_proposed"] in {c for c, _ in await store.categories()}


async def confirm_step(store: StoreClient, domain: dict, text: str, intent: str):
    """Run the form's validation on the citizen's answer to the summary."""
    dispatcher = CollectingDispatcher()
    tracker = load_tracker(
        "form_summary", sender="s", category=await a_category(store), text=text, intent=intent
    )
    events = await ValidateWorkOrderForm(store).run(dispatcher, tracker, domain)
    return slot_events(events), texts(dispatcher)


@pytest.mark.parametrize(
    ("text", "intent"),
    [("/affirm", "affirm"), ("确认提交", "affirm"), ("确认。", "nlu_fallback"), ("好的", "faq")],
)
async def test_confirm_at_the_summary_completes_the_form(
    store: StoreClient, domain: dict, text: str, intent: str
) -> None:
    slots, said = await confirm_step(store, domain, text, intent)
    assert slots["wo_confirmed"] is True
    assert said == []


@pytest.mark.parametrize(
    ("text", "intent"),
    [("处理要多久啊", "faq"), ("嗯……", "nlu_fallback"), ("不对", "deny"), ("你好", "greet")],
)
async def test_unclear_answer_to_the_summary_asks_again(
    store: StoreClient, domain: dict, text: str, intent: str
) -> None:
    slots, said = await confirm_step(store, domain, text, intent)
    assert "wo_confirmed" in slots and slots["wo_confirmed"] is None  # the form asks again
    assert said == ["工单还没有提交。信息无误请点“确认提交”，不需要登记请点“取消”。"]


@pytest.mark.parametrize(("text", "intent"), [("取消", "cancel"), ("转人工", "request_human")])
async def test_cancel_or_human_at_the_summary_leaves_it_to_the_rules(
    store: StoreClient, domain: dict, text: str, intent: str
) -> None:
    slots, said = await confirm_step(store, domain, text, intent)
    assert slots == {} and said == []  # nothing extracted: the form rejects


def test_confirmation_is_the_last_thing_the_form_asks(domain: dict) -> None:
    assert domain["forms"]["work_order_form"]["required_slots"][-1] == "wo_confirmed"
    assert "action_ask_wo_confirmed" in domain["actions"]


async def test_failed_submission_keeps_the_answers_and_asks_for_confirmation_again(
    tmp_path, sender: str, store: StoreClient
) -> None:
    broken_db = Database(f"sqlite:///{tmp_path}/no-schema.db")  # no tables: inserts fail
    bus = create_bus(REDIS_URL, prefix="h12345test:broken:")
    broken = StoreClient(broken_db, bus, PersonalDataCipher(new_data_key()))
    dispatcher = CollectingDispatcher()
    tracker = load_tracker("form_confirmed", sender=sender, category=await a_category(store))
    try:
        events = await ActionSubmitWorkOrder(broken).run(dispatcher, tracker, {})
    finally:
        await bus.close()
        await broken_db.close()
    [text] = texts(dispatcher)
    assert "暂未提交成功" in text
    assert {"event": "active_loop", "name": "work_order_form"}.items() <= events[0].items()
    assert slot_events(events) == {"wo_confirmed": None}  # description, phone … are kept


# ------------------------------------------------------- ask only for what is missing (issue 11)

FULL_STORY = (
    "你好，我叫王建华，住在城东区光华街道翠竹苑小区4栋，我们这栋楼的电梯坏了两个星期了，"
    "物业一直拖着不修，楼里好多老人下不了楼，我的手机是13812340001，请尽快处理。"
)
NO_PHONE_STORY = (
    "西城区和平路35号楼下新开的烧烤店每天营业到凌晨三点，油烟直接往楼上飘，"
    "噪音吵得睡不着，我是刘女士。"
)


def next_asked(domain: dict, tracker_slots: dict, events: list[dict]) -> str:
    """What the form asks next after these events: Rasa requests the first empty required slot."""
    slots = {**tracker_slots, **slot_events(events)}
    required = domain["forms"]["work_order_form"]["required_slots"]
    return next(s for s in required if slots.get(s) is None)


async def activate_with(store: StoreClient, domain: dict, story: str, tracker_name: str):
    """The form's validation when a description arrives; returns (slots after, events)."""
    tracker = load_tracker(tracker_name, sender="s", description=story)
    before = dict(tracker.slots)
    events = await ValidateWorkOrderForm(store).run(CollectingDispatcher(), tracker, domain)
    return {**before, **slot_events(events)}, events


async def test_a_full_story_goes_straight_to_the_summary_with_the_three_fields(
    store: StoreClient, domain: dict, sender: str
) -> None:
    slots, events = await activate_with(store, domain, FULL_STORY, "form_activated_with_story")
    assert slots["location"] == "城东区光华街道翠竹苑小区4栋"
    assert slots["contact_name"] == "王建华"
    assert slots["phone"] == "13812340001"
    assert slots["category"] == "urban"  # a confident proposal is not asked either
    assert next_asked(domain, slots, events) == "wo_confirmed"

    dispatcher = CollectingDispatcher()
    summary_tracker = load_tracker("form_summary", sender=sender, text="", intent="affirm")
    summary_tracker.slots.update({s: slots.get(s) for s in FORM_SLOTS})
    await ActionSummarizeWorkOrder(store).run(dispatcher, summary_tracker, {})
    [text] = texts(dispatcher)
    assert "地点：城东区光华街道翠竹苑小区4栋" in text
    assert "联系人：王建华" in text
    assert "手机：138****0001" in text and "类别：城乡建设" in text
    titles = [b["title"] for b in buttons(dispatcher)]
    assert {"修改类别", "修改地点", "修改联系人", "修改手机"} <= set(titles)


async def test_a_story_without_a_phone_asks_only_for_the_phone(
    store: StoreClient, domain: dict
) -> None:
    slots, events = await activate_with(store, domain, NO_PHONE_STORY, "form_activated_with_story")
    assert slots["location"] == "西城区和平路35号楼"
    assert slots["contact_name"] == "刘女士"
    assert slots["phone"] is None
    assert next_asked(domain, slots, events) == "phone"


async def test_a_description_typed_after_a_bare_complaint_also_fills_the_fields(
    store: StoreClient, domain: dict
) -> None:
    slots, events = await activate_with(store, domain, FULL_STORY, "form_description_answered")
    assert (slots["location"], slots["contact_name"], slots["phone"]) == (
        "城东区光华街道翠竹苑小区4栋",
        "王建华",
        "13812340001",
    )
    assert next_asked(domain, slots, events) == "wo_confirmed"


async def test_a_story_that_names_nothing_asks_for_everything(
    store: StoreClient, domain: dict
) -> None:
    story = "最近半夜总有人在楼下大声喧哗，已经好几个星期了，实在受不了"
    slots, events = await activate_with(store, domain, story, "form_activated_with_story")
    assert slots["location"] is None and slots["contact_name"] is None and slots["phone"] is None
    assert next_asked(domain, slots, events) in ("category", "location")


@pytest.mark.parametrize(
    ("text", "slot"),
    [("修改地点", "location"), ("联系人不对", "contact_name"), ("修改手机", "phone")],
)
async def test_a_field_can_be_corrected_from_the_summary(
    store: StoreClient, domain: dict, text: str, slot: str
) -> None:
    slots, said = await confirm_step(store, domain, text, "deny")
    assert slots["wo_confirmed"] is None and slots[slot] is None
    assert said == []  # no complaint: the form simply asks for that field again
    before = load_tracker("form_summary", sender="s", category="urban", text=text, intent="deny")
    events = [{"event": "slot", "name": k, "value": v} for k, v in slots.items()]
    assert next_asked(domain, dict(before.slots), events) == slot


async def test_a_typed_correction_replaces_the_value(store: StoreClient, domain: dict) -> None:
    slots, said = await confirm_step(store, domain, "手机号改为 139-0000-1111", "nlu_fallback")
    assert slots["phone"] == "13900001111" and slots["wo_confirmed"] is None
    slots, said = await confirm_step(store, domain, "地点改成北湖路8号", "nlu_fallback")
    assert slots["location"] == "北湖路8号"
    slots, said = await confirm_step(store, domain, "手机改为12345", "nlu_fallback")
    assert slots["phone"] is None and "11位手机号" in said[0]  # validated like any answer


async def test_correcting_the_category_shows_the_list(store: StoreClient, domain: dict) -> None:
    slots, said = await confirm_step(store, domain, "修改类别", "deny")
    assert slots["category"] is None and slots["category_choices_shown"] is True
    assert said == []
