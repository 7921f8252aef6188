"""Start Rasa, the action server and the gateway as real processes, as `make run` does, on
free loopback ports with a throw-away database. Shared by every end-to-end test module."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import new_data_key

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "current.tar.gz"
STARTUP_SECONDS = 180


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """URLs and environment of the running processes."""

    gateway: str
    rasa: str
    actions: str
    env: dict[str, str]
    database_url: str


def _wait_ready(url: str, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        for p, log in zip(procs, logs, strict=True):
            if p.poll() is not None:
                raise RuntimeError(f"{log.name} exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in logs)
    raise RuntimeError(f"stack not ready after {STARTUP_SECONDS}s\n{tails}")


def start_stack(
    tmp: Path, database_url: str, extra_env: dict[str, str] | None = None
) -> tuple[Stack, list[subprocess.Popen]]:
    """Start the three processes; the caller stops them."""
    if not MODEL.exists():
        raise RuntimeError("no trained model: run `make model` (make test does it first)")
    rasa_port, actions_port, gateway_port = free_port(), free_port(), free_port()
    endpoints = tmp / "endpoints.yml"
    endpoints.write_text(f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n')
    token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_KEY": new_data_key(),
        "SESSION_SECRET": secrets.token_urlsafe(32),
        "RASA_TOKEN": token,
        "RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "ACTION_SERVER_URL": f"http://127.0.0.1:{actions_port}",
        "PORT": str(gateway_port),
        "HOST": "127.0.0.1",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{gateway_port}",
        "SANIC_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        # Rasa loads deploy/rasa-logging.yml (the log mask) before it adds the cwd to sys.path.
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    if "REDIS_URL" not in (extra_env or {}):
        env.pop("REDIS_URL", None)  # the SQLite default runs without Redis
    subprocess.run(
        [sys.executable, "-m", "store.migrate"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    commands = {
        "actions": [
            sys.executable,
            "-m",
            "rasa_sdk",
            "--actions",
            "actions",
            "-p",
            str(actions_port),
        ],
        "rasa": [
            str(ROOT / ".venv-rasa" / "bin" / "rasa"),
            "run",
            "--logging-config-file",
            str(ROOT / "deploy" / "rasa-logging.yml"),
            "--model",
            str(MODEL),
            "--enable-api",
            f"--auth-token={token}",  # one word: a token may start with "-"
            "-i",
            "127.0.0.1",
            "-p",
            str(rasa_port),
            "--endpoints",
            str(endpoints),
            "--credentials",
            str(ROOT / "credentials.yml"),
        ],
        "gateway": [sys.executable, "-m", "bot"],
    }
    procs, logs = [], []
    for name, cmd in commands.items():
        log = tmp / f"{name}.log"
        logs.append(log)
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
            )
        )
    stack = Stack(
        gateway=f"http://127.0.0.1:{gateway_port}",
        rasa=env["RASA_URL"],
        actions=env["ACTION_SERVER_URL"],
        env=env,
        database_url=database_url,
    )
    try:
        _wait_ready(f"{stack.gateway}/readyz", procs, logs)
    except Exception:
        stop(procs)
        raise
    return stack, procs


def stop(procs: list[subprocess.Popen]) -> None:
    """Terminate, then kill what does not stop."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole product on the SQLite default (as `make run` runs it)."""
    tmp = tmp_path_factory.mktemp("stack")
    running, procs = start_stack(tmp, f"sqlite:///{tmp / 'hotline.db'}")
    yield running
    stop(procs)
