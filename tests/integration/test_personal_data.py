"""Personal data in the store: free text encrypted at rest with its row and column as
associated data, and bound values kept out of database error messages."""

from __future__ import annotations

import base64
import json
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from bot.settings import Settings
from store import conversations, links, work_orders
from store.crypto import DataKeyError, PersonalDataCipher, UnreadableCiphertext
from store.db import Database
from store.models import Citizen, Message, WorkOrder, utcnow
from tests.builders import file_order
from tests.conftest import new_data_key
from tests.fakes.rasa import FakeRasa
from tests.integration.test_console_helpers import Console, make_agent, unique

ADDRESS = "幸福路88号3栋1203室王秀英"


async def test_failing_statement_does_not_show_bound_values(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    stmt = text("INSERT INTO no_such_table (note, phone) VALUES (:note, :phone)")
    values = {"note": ADDRESS, "phone": "13812345678"}
    with pytest.raises(DBAPIError) as failure:
        async with db.session() as s:
            await s.execute(stmt, values)
    logging.getLogger("gateway").exception("statement failed", exc_info=failure.value)
    shown = str(failure.value) + caplog.text
    assert "no_such_table" in shown
    assert ADDRESS not in shown and "13812345678" not in shown


TEXT = "我家楼下的路灯坏了一个月，电话13812345678，身份证11010119900307123X"


async def _stored_message(db: Database, text: str = TEXT, sender: str = "w-1") -> int:
    async with db.session() as s:
        conv = await conversations.ensure_conversation(s, "web", sender)
        msg = await conversations.store_inbound(s, conv, text, None)
        return msg.id


async def _order(db: Database) -> WorkOrder:
    async with db.session() as s:
        order = await file_order(
            s,
            db.cipher,
            None,
            description="幸福路8号路灯不亮，我的手机13812345678",
            location=ADDRESS,
            contact_name="王女士",
            phone="13812345678",
        )
        await work_orders.set_delay_reason(s, order, "需与王女士13812345678约时间", "agent:a")
        await work_orders.add_note(s, order, "市民补充：晚上8点后在家", "citizen")
        return order


async def _raw(db: Database, sql: str, **params: object) -> list[tuple]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


def _clear_in(blob: bytes | None, *fragments: str) -> bool:
    return blob is not None and any(f.encode("utf-8") in bytes(blob) for f in fragments)


async def test_message_text_is_ciphertext_in_the_database(db: Database) -> None:
    message_id = await _stored_message(db)
    [(blob,)] = await _raw(db, "SELECT text_enc FROM message WHERE id = :i", i=message_id)
    assert blob and not _clear_in(blob, "13812345678", "路灯", "110101")
    async with db.session() as s:
        assert (await s.get_one(Message, message_id)).text == TEXT


async def test_work_order_free_text_is_ciphertext_in_the_database(db: Database) -> None:
    order = await _order(db)
    [row] = await _raw(
        db,
        "SELECT description_enc, location_enc, delay_reason_enc FROM work_order WHERE id = :i",
        i=order.id,
    )
    notes = await _raw(
        db, "SELECT note_enc FROM work_order_event WHERE work_order_id = :i", i=order.id
    )
    for blob in (*row, *(n for (n,) in notes)):
        assert not _clear_in(blob, "13812345678", "路灯", "幸福路", "王女士", "晚上8点")
    async with db.session() as s:
        again = await work_orders.by_tracking_no(s, order.tracking_no)
        assert again.location == ADDRESS and again.delay_reason == "需与王女士13812345678约时间"
        assert [e.note for e in again.events if e.kind == "note"] == ["市民补充：晚上8点后在家"]


async def test_a_ciphertext_moved_to_another_row_or_column_does_not_decrypt(db: Database) -> None:
    first = await _stored_message(db, "第一条：我的手机13812345678", "w-1")
    second = await _stored_message(db, "第二条：普通咨询", "w-2")
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE message SET text_enc = (SELECT text_enc FROM message WHERE id = :a) "
                "WHERE id = :b"
            ),
            {"a": first, "b": second},
        )
    async with db.session() as s:
        assert (await s.get_one(Message, first)).text == "第一条：我的手机13812345678"
        with pytest.raises(UnreadableCiphertext):
            _ = (await s.get_one(Message, second)).text
    order = await _order(db)
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE work_order SET location_enc = description_enc WHERE id = :i"),
            {"i": order.id},
        )
    async with db.session() as s:
        moved = await s.get_one(WorkOrder, order.id)
        assert moved.description.startswith("幸福路8号")
        with pytest.raises(UnreadableCiphertext):
            _ = moved.location


async def test_without_the_key_nothing_is_written_in_clear(database_url: str, db: Database) -> None:
    keyless = Database(database_url)
    try:
        with pytest.raises(DataKeyError):
            await _stored_message(keyless)
        async with keyless.session() as s:
            with pytest.raises(TypeError):
                select(Message).where(Message.text == TEXT)
            assert (await s.execute(select(Message))).first() is None
    finally:
        await keyless.close()


def test_ciphertexts_written_before_associated_data_still_decrypt() -> None:
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = new_data_key()
    nonce = os.urandom(12)
    legacy = nonce + AESGCM(base64.b64decode(key)).encrypt(nonce, b"13812345678", None)
    assert PersonalDataCipher(key).decrypt(legacy) == "13812345678"


async def test_rasa_gets_numbers_masked_and_the_store_keeps_them_encrypted(
    gateway: TestClient, fake_rasa: FakeRasa, db: Database
) -> None:
    said = "我的手机13812345678，身份证11010119900307123X，工资卡6222021234567890123"
    resp = await gateway.post("/webhooks/rest/webhook", json={"sender": "pd-1", "message": said})
    assert resp.status == 200
    sent = fake_rasa.received[-1]
    assert sent["message"] == (
        "我的手机138****5678,身份证110101********123X,工资卡6222***********0123"
    )  # NFKC for NLU turns the full-width commas into ASCII ones
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake_rasa.url}/conversations/{sent['sender']}/tracker") as tracker:
            kept = await tracker.text()
    for clear in ("13812345678", "11010119900307123X", "6222021234567890123"):
        assert clear not in json.dumps(sent, ensure_ascii=False) and clear not in kept
    message_id = sent["metadata"]["message_id"]
    [(blob,)] = await _raw(db, "SELECT text_enc FROM message WHERE id = :i", i=message_id)
    assert not _clear_in(blob, "13812345678", "身份证")
    async with db.session() as s:
        assert (await s.get_one(Message, message_id)).text == said


async def test_console_shows_cards_and_landlines_masked_until_revealed(
    gateway: TestClient, fake_rasa: FakeRasa, settings: Settings
) -> None:
    said = "退款请打到6222021234567890123，或打座机0755-86001234找我"
    fake_rasa.status = 500  # Rasa down: the message waits for an agent
    await gateway.post("/webhooks/rest/webhook", json={"sender": "pd-c", "message": said})
    name = unique("agent")
    await make_agent(settings.database_url, name)
    agent = Console(gateway)
    try:
        assert (await agent.login(name)).status == 200
        [waiting] = (await (await agent.get("/console/api/handoffs")).json())["handoffs"]
        detail = await (await agent.get(f"/console/api/handoffs/{waiting['id']}")).json()
        [first] = [m for m in detail["transcript"] if m["from"] == "citizen"]
        assert first["text"] == "退款请打到6222***********0123，或打座机0755-****1234找我"
        assert "6222021234567890123" not in json.dumps(detail)
        # Only the agent who took the conversation may reveal its messages.
        assert (await agent.post(f"/console/api/handoffs/{waiting['id']}/claim")).status == 200
        shown = await agent.post(f"/console/api/messages/{first['id']}/reveal")
        assert (await shown.json())["text"] == said
    finally:
        await agent.close()


async def test_merged_citizen_keeps_a_phone_encrypted_under_its_own_row(db: Database) -> None:
    async with db.session() as s:
        newer = Citizen(phone="13812345678", phone_hash="h", phone_verified_at=utcnow())
        older = Citizen()
        s.add_all([older, newer])
        await s.flush()
        survivor = await links.merge_citizens(s, older.id, newer.id)
    async with db.session() as s:
        kept = await s.get_one(Citizen, survivor)
        assert kept.phone == "13812345678"
    [(blob,)] = await _raw(db, "SELECT phone_enc FROM citizen WHERE id = :i", i=survivor)
    with pytest.raises(UnreadableCiphertext):
        db.cipher.decrypt(blob)  # bound to (citizen, phone_enc, its public_id)
