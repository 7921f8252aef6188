"""`python -m bot`: run the gateway."""

from __future__ import annotations

from aiohttp import web

from bot.app import create_app
from bot.logs import configure_logging
from bot.settings import get_settings


def main() -> None:
    """Serve the gateway on the configured host and port."""
    configure_logging()
    settings = get_settings()
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None)


if __name__ == "__main__":
    main()
