"""`python -m bot.console.cli create-admin` creates the first admin; passwords never in argv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store import agents

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], database_url: str, stdin: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "bot.console.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_create_admin_from_stdin_then_sign_in(db, database_url) -> None:
    done = _cli(
        ["create-admin", "--username", "root", "--password-stdin"],
        database_url,
        "a long admin secret\n",
    )
    assert done.returncode == 0, done.stderr
    assert "a long admin secret" not in done.stdout + done.stderr
    async with db.session() as s:
        agent = await agents.verify(s, "root", "a long admin secret")
    assert agent is not None and agent.role == "admin"
    again = _cli(["create-admin", "--username", "root", "--password-stdin"], database_url, "x" * 12)
    assert again.returncode == 2 and "taken" in again.stderr
    argv = _cli(["create-admin", "--username", "r2", "--password", "pw"], database_url, "")
    assert argv.returncode != 0  # there is no --password option
