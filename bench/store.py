"""Store benchmark: lookup latency with 1,000,000 work orders in PostgreSQL, and create
throughput as a ratio to a raw INSERT loop on the same database. Prints figures; asserts nothing.

    .venv/bin/python bench/store.py [--rows 1000000] [--lookups 1000] [--creates 300]

Goal (issue 4): lookup p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench._stats import pct
from store import work_orders
from store.bus import MemoryBus
from store.categories import seed_taxonomy
from store.conversations import ensure_conversation
from store.crypto import PersonalDataCipher, associated_data
from store.db import Database
from store.lookup import lookup
from store.migrate import upgrade
from store.tracking import ALPHABET, _check_char

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def fill(url: str, rows: int, cipher: PersonalDataCipher, phone_hash: str) -> list[str]:
    """Insert `rows` work orders with valid tracking numbers; returns a sample of them."""
    conn = await asyncpg.connect(url)
    sample: list[str] = []
    batch = 50_000
    now = datetime.now(UTC)
    try:
        for start in range(0, rows, batch):
            records = []
            for _ in range(min(batch, rows - start)):
                day = f"2026{random.randint(1, 12):02d}{random.randint(1, 28):02d}"
                body = "".join(secrets.choice(ALPHABET) for _ in range(8))
                no = f"12345-{day}-{body}{_check_char(day + body)}"
                records.append(
                    (
                        no,
                        "in_progress",
                        "report",
                        cipher.encrypt(
                            "路灯不亮", associated_data("work_order", "description_enc", no)
                        ),
                        cipher.encrypt(
                            "13812345678", associated_data("work_order", "phone_enc", no)
                        ),
                        phone_hash,
                        False,
                        now,
                        now,
                    )
                )
                if len(sample) < 5000 and random.random() < 0.01:
                    sample.append(no)
            await conn.copy_records_to_table(
                "work_order",
                records=records,
                columns=[
                    "tracking_no",
                    "status",
                    "kind",
                    "description_enc",
                    "phone_enc",
                    "phone_hash",
                    "supervision",
                    "created_at",
                    "updated_at",
                ],
            )
        await conn.execute("ANALYZE work_order")
    finally:
        await conn.close()
    return sample


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--creates", type=int, default=300)
    args = parser.parse_args()

    name = f"h12345_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        await asyncio.to_thread(upgrade, url)
        cipher = PersonalDataCipher(base64.b64encode(secrets.token_bytes(32)).decode())
        blob, phash = cipher.encrypt("小区路灯不亮"), cipher.keyed_hash("13812345678")
        t0 = time.perf_counter()
        sample = await fill(url, args.rows, cipher, phash)
        print(f"filled {args.rows:,} work orders in {time.perf_counter() - t0:.1f} s")

        db, bus = Database(url, cipher=cipher), MemoryBus()
        timings = []
        for i in range(args.lookups):
            no = sample[i % len(sample)]
            t = time.perf_counter()
            async with db.session() as s:
                out = await lookup(
                    s,
                    bus,
                    cipher,
                    raw_tracking_no=no,
                    phone_last4="5678",
                    requester_keys=[f"bench:{i}"],
                )
            timings.append((time.perf_counter() - t) * 1000)
            assert out.order is not None
        print(
            f"lookup (tracking no + last 4 digits, through store.lookup): "
            f"p50 {pct(timings, 50):.2f} ms  p99 {pct(timings, 99):.2f} ms  (goal p99 < 20 ms)"
        )

        async with db.session() as s:
            await seed_taxonomy(s)
            conv = await ensure_conversation(s, "bench", "citizen")
        t = time.perf_counter()
        for i in range(args.creates):
            async with db.session() as s:
                await work_orders.create_work_order(
                    s,
                    cipher,
                    conversation=conv,
                    kind="report",
                    category_code="urban",
                    description="小区路灯不亮",
                    location="某某路",
                    contact_name="王先生",
                    phone="13812345678",
                    actor="bench",
                    idempotency_key=f"bench-{i}",
                )
        ours = args.creates / (time.perf_counter() - t)

        conn = await asyncpg.connect(url)
        t = time.perf_counter()
        for i in range(args.creates):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO work_order (tracking_no, status, kind, description_enc,"
                    " supervision, created_at, updated_at) "
                    "VALUES ($1, 'received', 'report', $2, false, now(), now())",
                    f"RAW-{i}-{uuid.uuid4().hex[:6]}",
                    blob,
                )
        raw = args.creates / (time.perf_counter() - t)
        await conn.close()
        await db.close()
        print(
            f"create: {ours:.0f}/s through the store vs {raw:.0f}/s raw INSERT loop; "
            f"ratio store/raw = {ours / raw:.2f}"
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
