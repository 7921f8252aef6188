"""`python -m store.migrate`: bring the database to the current schema and seed reference data."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str, data_key: str | None = None) -> Config:
    """Alembic config pointing at our migrations and `database_url`; `data_key` (DATA_KEY)
    lets migrations encrypt existing rows (0006)."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "store" / "migrations"))
    cfg.attributes["database_url"] = database_url
    if data_key:
        cfg.attributes["data_key"] = data_key
    return cfg


def upgrade(database_url: str, data_key: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade head` (or to `revision`)."""
    command.upgrade(alembic_config(database_url, data_key), revision)


def downgrade(database_url: str, data_key: str | None, revision: str) -> None:
    """`alembic downgrade <revision>` (0006 needs the key to decrypt back)."""
    command.downgrade(alembic_config(database_url, data_key), revision)


async def seed(database_url: str) -> None:
    """Departments and the category taxonomy (idempotent)."""
    from store.categories import seed_taxonomy
    from store.db import Database

    db = Database(database_url)
    try:
        async with db.session() as s:
            await seed_taxonomy(s)
    finally:
        await db.close()


def main() -> None:
    """Migrate and seed the configured database."""
    from config import get_settings

    settings = get_settings()
    url = settings.database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url, settings.data_key.get_secret_value())
    asyncio.run(seed(url))
    print("database ready")


if __name__ == "__main__":
    main()
