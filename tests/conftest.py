"""Shared fixtures: settings on a temporary SQLite file or the real PostgreSQL, a fake Rasa,
the gateway app. Tests that need PostgreSQL or Redis use the machine's real servers."""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.settings import Settings
from store.crypto import PersonalDataCipher
from store.db import Database
from store.schema import create_all
from tests.fakes.rasa import FakeRasa

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def new_data_key() -> str:
    """A fresh DATA_KEY for one test."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(scope="session")
def pg_database() -> str:
    """A throw-away PostgreSQL database for this test session (dropped at the end)."""
    import psycopg

    name = f"h12345_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on the SQLite default and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hotline.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def data_key() -> str:
    """The DATA_KEY of one test: the gateway under test and the `db` fixture share it."""
    return new_data_key()


def database_of(settings: Settings) -> Database:
    """Another connection to the database of a gateway under test, with its DATA_KEY."""
    cipher = PersonalDataCipher(settings.data_key.get_secret_value())
    return Database(settings.database_url, cipher=cipher)


@pytest.fixture
async def db(database_url: str, data_key: str) -> AsyncIterator[Database]:
    """A database with an empty, current schema."""
    database = Database(database_url, cipher=PersonalDataCipher(data_key))
    from store.schema import drop_all

    await drop_all(database)
    await create_all(database)
    yield database
    await database.close()


@pytest.fixture
async def fake_rasa() -> AsyncIterator[FakeRasa]:
    """A local fake of Rasa's REST channel."""
    fake = FakeRasa()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def settings(database_url: str, fake_rasa: FakeRasa, data_key: str) -> Settings:
    """Settings for a gateway under test (no .env file is read)."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=None,
        # Tests that switch Redis on share one server: keys of one test never meet another's.
        redis_prefix=f"h12345test:{uuid.uuid4().hex[:12]}:",
        rasa_url=fake_rasa.url,
        action_server_url="http://127.0.0.1:9",
        rasa_timeout=1.5,
        data_key=data_key,
        session_secret=secrets.token_urlsafe(32),
    )


@pytest.fixture
async def gateway(settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    """The gateway app on a real loopback port, schema created."""
    app = create_app(settings)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()
