"""Console user administration.

    python -m bot.console.cli create-admin --username admin            # prompts for the password
    printf '%s\n' "$PW" | python -m bot.console.cli create-admin --username admin --password-stdin
    python -m bot.console.cli create-agent --username li --role supervisor --password-stdin

Passwords are never taken from the command line (it shows in `ps` and shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from sqlalchemy.exc import DBAPIError

from bot.settings import get_settings
from store import agents
from store.db import Database


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit("passwords differ")
    return first


async def _create(url: str, username: str, password: str, role: str, name: str | None) -> None:
    db = Database(url)
    try:
        async with db.session() as s:
            agent = await agents.create_agent(s, username, password, role=role, display_name=name)
            print(f"created {agent.role} {agent.username!r} (id {agent.id})")
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bot.console.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("create-admin", "create-agent"):
        p = sub.add_parser(command)
        p.add_argument("--username", required=True)
        p.add_argument("--display-name")
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        if command == "create-agent":
            p.add_argument("--role", choices=agents.ROLES, default="agent")
    args = parser.parse_args(argv)
    role = "admin" if args.command == "create-admin" else args.role
    password = _password(args.password_stdin)
    try:
        asyncio.run(
            _create(get_settings().database_url, args.username, password, role, args.display_name)
        )
    except agents.AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        print(
            f"error: the database is not ready ({type(exc.orig).__name__}); "
            "create the schema first: alembic upgrade head",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
