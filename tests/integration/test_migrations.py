"""The Alembic migrations build exactly the schema the models describe, on both databases,
and 0006 encrypts the free text already stored."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import create_engine, text

from store.crypto import PersonalDataCipher, UnreadableCiphertext
from store.db import Database, sync_url
from store.migrate import downgrade, upgrade
from store.models import Base, Citizen, Message, Rating, WorkOrder, WorkOrderEvent, utcnow
from store.schema import drop_all
from tests.conftest import new_data_key


async def test_upgrade_head_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    await drop_all(db)
    await db.close()
    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    await asyncio.to_thread(upgrade, database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


SEED_0003 = [
    # A citizen's phone is kept only once verified (0003 cleared the unproved ones).
    "INSERT INTO citizen (id, public_id, phone_enc, phone_verified_at, created_at)"
    " VALUES (1, 'c1', :phone, :now, :now)",
    "INSERT INTO channel_identity (id, channel, external_id, citizen_id, subscribed, created_at)"
    " VALUES (1, 'web', 'w1', 1, true, :now)",
    "INSERT INTO conversation (id, public_id, channel_identity_id, failed_fallbacks, created_at,"
    " last_message_at) VALUES (1, 'v1', 1, 0, :now, :now)",
    "INSERT INTO message (id, conversation_id, sender, text, internal, status, created_at)"
    " VALUES (1, 1, 'citizen', '路灯坏了，电话13812345678', false, 'processed', :now)",
    "INSERT INTO work_order (id, tracking_no, status, kind, description, location, supervision,"
    " delay_reason, phone_enc, created_at, updated_at) VALUES (1, '12345-20261126-ABCDEFGH0',"
    " 'received', 'report', '幸福路路灯不亮', '幸福路8号', false, NULL, :phone, :now, :now)",
    "INSERT INTO work_order_event (id, work_order_id, kind, actor, note, created_at)"
    " VALUES (1, 1, 'note', 'citizen', '晚上在家13812345678', :now)",
    "INSERT INTO rating (id, work_order_id, score, comment, created_at)"
    " VALUES (1, 1, 'satisfied', '处理很快', :now)",
]


async def test_0006_encrypts_existing_free_text_and_reads_it_back(database_url: str) -> None:
    key = new_data_key()
    db = Database(database_url, cipher=PersonalDataCipher(key))
    await drop_all(db)
    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    try:
        await asyncio.to_thread(upgrade, database_url, None, "0003")
        nonce = os.urandom(12)  # a phone as 0003 stored it: no version byte, no associated data
        phone = nonce + AESGCM(base64.b64decode(key)).encrypt(nonce, b"13812345678", None)
        with engine.begin() as conn:
            for sql in SEED_0003:
                conn.execute(text(sql), {"now": utcnow(), "phone": phone})
        with pytest.raises(RuntimeError, match="DATA_KEY"):
            await asyncio.to_thread(upgrade, database_url)  # no key: refused, nothing lost
        await asyncio.to_thread(upgrade, database_url, key)
        with engine.connect() as conn:
            raw = conn.execute(
                text(
                    "SELECT m.text_enc, w.description_enc, w.location_enc, e.note_enc,"
                    " r.comment_enc FROM message m, work_order w, work_order_event e, rating r"
                )
            ).one()
        assert all(raw[:4]) and raw.comment_enc
        for blob in raw:
            assert "路".encode() not in blob and b"13812345678" not in blob
        async with db.session() as s:
            assert (await s.get_one(Message, 1)).text == "路灯坏了，电话13812345678"
            order = await s.get_one(WorkOrder, 1)
            assert (order.description, order.location, order.delay_reason) == (
                "幸福路路灯不亮",
                "幸福路8号",
                None,
            )
            assert (await s.get_one(WorkOrderEvent, 1)).note == "晚上在家13812345678"
            assert (await s.get_one(Rating, 1)).comment == "处理很快"
            assert order.phone == "13812345678"
            assert (await s.get_one(Citizen, 1)).phone == "13812345678"
        with engine.connect() as conn:
            [resealed] = conn.execute(text("SELECT phone_enc FROM work_order")).one()
        with pytest.raises(UnreadableCiphertext):
            PersonalDataCipher(key).decrypt(resealed)  # now bound to its row and column
        await asyncio.to_thread(downgrade, database_url, key, "0003")
        with engine.connect() as conn:
            text_0003, phone_0003 = conn.execute(
                text("SELECT m.text, w.phone_enc FROM message m, work_order w")
            ).one()
        assert text_0003 == "路灯坏了，电话13812345678"
        assert PersonalDataCipher(key).decrypt(phone_0003) == "13812345678"
    finally:
        engine.dispose()
        await drop_all(db)
        await db.close()
