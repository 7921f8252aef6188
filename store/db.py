"""Engine and session factory; turns plain URLs into their asyncio drivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from store.crypto import PersonalDataCipher


def async_url(url: str) -> str:
    """`postgresql://` → `postgresql+asyncpg://`, `sqlite://` → `sqlite+aiosqlite://`."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def sync_url(url: str) -> str:
    """The synchronous driver URL Alembic and benchmarks use (psycopg 3 / pysqlite)."""
    url = url.replace("+asyncpg", "").replace("+aiosqlite", "")
    if url.startswith("postgres://"):
        url = "postgresql://" + url.split("://", 1)[1]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """One engine and its session factory, shared by a process.

    `cipher` (from DATA_KEY) encrypts and decrypts the free text of messages and work orders
    (store/sealed.py); without it those values can be neither written nor read.
    """

    def __init__(
        self, url: str, *, echo: bool = False, cipher: PersonalDataCipher | None = None
    ) -> None:
        self.url = async_url(url)
        self.cipher = cipher
        # Errors and echo never print bound values: they are citizens' text and numbers.
        kwargs: dict = {"echo": echo, "hide_parameters": True}
        if self.url.startswith("postgresql"):
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, info={"cipher": cipher}
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        """True if the database answers."""
        from sqlalchemy import text

        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        """Dispose of the pool."""
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL is corruption-safe and skips an fsync per commit; a power cut may
    # lose the last commits of the embedded dev store (production runs on PostgreSQL).
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
