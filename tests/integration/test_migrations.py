"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from store.db import Database, sync_url
from store.migrate import upgrade
from store.models import Base
from store.schema import drop_all


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
