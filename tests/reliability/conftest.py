"""Real processes for the reliability suite, started, killed and restarted by the tests: the
gateway (`python -m bot`), a private redis-server and a private PostgreSQL cluster, each on a
free loopback port. The machine's shared PostgreSQL and Redis are never touched.

Waiting is always for a condition (a port answering, a row changing), with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import new_data_key
from tests.e2e.conftest import ROOT, free_port

START_SECONDS = 60.0


async def wait_for(
    condition: Callable[[], Awaitable[bool]], within: float, what: str, step: float = 0.1
) -> None:
    """Poll `condition` until it is true; TimeoutError naming `what` after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(step)


async def answers(url: str) -> bool:
    """True if `url` answers 200 right now."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            async with http.get(url) as resp:
                return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def port_open(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:`port`."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def gateway_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a gateway process under test (no Rasa unless RASA_URL is given)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_KEY": new_data_key(),
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "RASA_URL": "http://127.0.0.1:9",
        "ACTION_SERVER_URL": "http://127.0.0.1:9",
        "HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    if "REDIS_URL" not in extra:
        env.pop("REDIS_URL", None)
    return env


def migrate(env: dict[str, str]) -> None:
    """Bring the gateway's database to the current schema, as `make run` does."""
    subprocess.run(
        [sys.executable, "-m", "store.migrate"], cwd=ROOT, env=env, check=True, capture_output=True
    )


class Gateway:
    """`python -m bot` on a free port; `kill()` is SIGKILL (no clean shutdown)."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, log: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=ROOT,
            env={**self.env, "PORT": str(self.port)},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    async def start(self) -> None:
        """Start the process and wait until it answers /healthz."""
        self.starts += 1
        log = self.logs / f"gateway-{self.starts}.log"
        self._spawn(log)

        async def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{log.read_text()[-3000:]}")
            return await answers(self.url + "/healthz")

        await wait_for(up, START_SECONDS, "gateway start-up")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate, or kill what does not stop."""
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class PrivateRedis:
    """A redis-server of the test's own, without persistence: a restart loses every key."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=(self.logs / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    async def start(self) -> None:
        self._spawn()
        await wait_for(lambda: port_open(self.port), 15, "redis start-up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb into a temporary directory, trust auth)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="h12345-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust"]),
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        subprocess.run(
            _as_postgres(
                [
                    *("pg_ctl", "-D", str(self.data), "-o", options),
                    *("-l", str(self.dir / "log"), "-w", "start"),
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            _as_postgres(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=False,
            capture_output=True,
            timeout=60,
        )

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    await redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def private_postgres() -> PrivatePostgres:
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.remove()


@pytest.fixture
def gateways(tmp_path: Path):
    """Make gateways; every one is stopped at the end."""
    made: list[Gateway] = []

    def make(env: dict[str, str]) -> Gateway:
        gw = Gateway(tmp_path, env)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()
