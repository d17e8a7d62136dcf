"""The browser room's stream WebSocket, relayed to snapserver's stream port (one origin).

A browser room (``static/player/``) speaks snapserver's binary stream protocol
over a WebSocket, one message per frame.  snapserver's own ``/stream``
WebSocket lives on its HTTP port, which also serves its whole JSON-RPC API
without authentication (and to any web page in a browser on the same
machine, loopback or not); so the service accepts the WebSocket on
``/stream`` and relays it to the stream port that snapclients use (TCP, the
same messages back to back: a 26-byte header whose last 4 bytes are the
payload size), and the managed snapserver needs no HTTP port at all.

The rules are the API's: a browser page of another origin is refused (403),
and with a token configured, the socket must carry it (``?token=``, since
browsers cannot set headers on a WebSocket), as the live-updates socket does.
``check_token`` decides; by default it checks the service's ``web.token``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

_LOGGER = logging.getLogger(__name__)

PATH = "/stream"
CONNECT_TIMEOUT = 5.0
# snapserver's frames are 20 ms chunks (a few kB of pcm) and small JSON.
MAX_FRAME = 4 * 1024 * 1024
HEADER = 26
"""Bytes of a stream-protocol message header; the payload size is its last 4 (little-endian)."""

TokenCheck = Callable[["web.Request"], bool]


def add_routes(
    app: web.Application,
    host: str,
    port: int,
    check_token: TokenCheck | None = None,
    *,
    path: str = PATH,
) -> None:
    """Mount the relay to snapserver ``host:port`` (its stream port) on ``path``."""
    proxy = StreamProxy(host, port, check_token or _service_token_check)
    app.router.add_get(path, proxy.handle)

    async def close_all(app: web.Application) -> None:
        await proxy.close_all()

    app.on_shutdown.append(close_all)


def _service_token_check(request: web.Request) -> bool:
    from .api import SERVICE
    from .auth import token_ok

    return token_ok(request.app[SERVICE].config.web.token, request)


class StreamProxy:
    """Relays each browser WebSocket to its own connection to snapserver's stream port."""

    def __init__(self, host: str, port: int, check_token: TokenCheck) -> None:
        self.host = host
        self.port = port
        self.check_token = check_token
        self._sockets: set[web.WebSocketResponse] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        from .auth import refuse_cross_origin

        refused = refuse_cross_origin(request)  # another site's page: not even upstream
        if refused is not None:
            return refused
        if not self.check_token(request):
            return web.json_response(
                {"error": "missing or wrong token: open the stream with ?token=TOKEN"}, status=401
            )
        address = f"{_bracket(self.host)}:{self.port}"
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except (TimeoutError, OSError) as err:
            _LOGGER.info("browser room: snapserver's stream port is unreachable: %s", err)
            return web.json_response(
                {"error": f"snapserver's stream port at {address} is unreachable"}, status=503
            )
        try:
            browser = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=30)
            await browser.prepare(request)
            self._sockets.add(browser)
            try:
                await _relay(browser, reader, writer)
            finally:
                self._sockets.discard(browser)
                await browser.close()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return browser

    async def close_all(self) -> None:
        from aiohttp import WSCloseCode

        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """One whole stream-protocol message (header and payload) from snapserver.

    Raises :class:`asyncio.IncompleteReadError` at the end of the stream and
    ValueError for a payload over :data:`MAX_FRAME`.
    """
    header = await reader.readexactly(HEADER)
    size = int.from_bytes(header[HEADER - 4 :], "little")
    if size > MAX_FRAME:
        raise ValueError(f"snapserver sent a {size}-byte message")
    return header + await reader.readexactly(size)


async def _relay(
    browser: web.WebSocketResponse, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Copy messages both ways until either side closes; then close the other."""
    from aiohttp import WSMsgType

    async def down() -> None:
        while True:
            await browser.send_bytes(await read_message(reader))

    async def up() -> None:
        async for message in browser:
            if message.type == WSMsgType.BINARY:
                writer.write(message.data)
                await writer.drain()
            elif message.type != WSMsgType.TEXT:  # the protocol has no text: ignored
                break

    tasks = {
        asyncio.create_task(down(), name="stream-proxy-down"),
        asyncio.create_task(up(), name="stream-proxy-up"),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                _LOGGER.info("browser room relay ended: %s", task.exception() or "closed")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
