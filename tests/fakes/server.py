"""The loopback server every fake of an outside service runs on."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer


class LocalServer:
    """An aiohttp app on 127.0.0.1, a free port: `await start()`, `url_for()`, `await close()`."""

    def __init__(self, app: web.Application) -> None:
        self.server = TestServer(app, host="127.0.0.1")

    def url_for(self, path: str = "") -> str:
        """The server's URL, with `path` appended."""
        return str(self.server.make_url(path)).rstrip("/")

    async def start(self) -> None:
        """Listen."""
        await self.server.start_server()

    async def close(self) -> None:
        """Stop listening."""
        await self.server.close()
