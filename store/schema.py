"""Create or upgrade the schema: Alembic for real databases, the same models for tests."""

from __future__ import annotations

from store.db import Database
from store.models import Base


async def create_all(db: Database) -> None:
    """Create every table from the models (tests; production uses `alembic upgrade head`)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def drop_all(db: Database) -> None:
    """Drop every table (tests only)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
