"""The browser room's stream WebSocket, proxied to snapserver (one origin).

A browser room (``static/player/``) speaks snapserver's binary stream protocol
over ``ws://HOST:HTTP_PORT/stream``.  When the page comes from ``broadcaster
serve`` on its own port, the browser may not reach snapserver's HTTP port
(it listens on loopback) and a second origin would need its own trust; so the
service accepts the WebSocket on ``/stream`` and relays every frame, unchanged,
to snapserver's ``/stream`` and back.

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
    from aiohttp import ClientWebSocketResponse, web

_LOGGER = logging.getLogger(__name__)

PATH = "/stream"
CONNECT_TIMEOUT = 5.0
# snapserver's frames are 20 ms chunks (a few kB of pcm) and small JSON.
MAX_FRAME = 4 * 1024 * 1024

TokenCheck = Callable[["web.Request"], bool]


def add_routes(
    app: web.Application,
    host: str,
    port: int,
    check_token: TokenCheck | None = None,
    *,
    path: str = PATH,
) -> None:
    """Mount the proxy of snapserver ``host:port`` (its HTTP port) on ``path``."""
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
    """Relays each browser WebSocket to its own WebSocket on snapserver."""

    def __init__(self, host: str, port: int, check_token: TokenCheck) -> None:
        self.url = f"http://{_bracket(host)}:{port}/stream"
        self.check_token = check_token
        self._sockets: set[web.WebSocketResponse] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import ClientError, ClientSession, ClientTimeout, WSServerHandshakeError, web

        from .auth import refuse_cross_origin

        refused = refuse_cross_origin(request)  # another site's page: not even upstream
        if refused is not None:
            return refused
        if not self.check_token(request):
            return web.json_response(
                {"error": "missing or wrong token: open the stream with ?token=TOKEN"}, status=401
            )
        timeout = ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        async with ClientSession(timeout=timeout) as session:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    upstream = await session.ws_connect(
                        self.url, max_msg_size=MAX_FRAME, autoping=True, heartbeat=None
                    )
            except (ClientError, WSServerHandshakeError, TimeoutError, OSError) as err:
                _LOGGER.info("browser room: snapserver's stream socket is unreachable: %s", err)
                return web.json_response(
                    {"error": f"snapserver's stream socket at {self.url} is unreachable"},
                    status=503,
                )
            async with upstream:
                browser = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=30)
                await browser.prepare(request)
                self._sockets.add(browser)
                try:
                    await _relay(browser, upstream)
                finally:
                    self._sockets.discard(browser)
                    await browser.close()
        return browser

    async def close_all(self) -> None:
        from aiohttp import WSCloseCode

        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def _relay(browser: web.WebSocketResponse, upstream: ClientWebSocketResponse) -> None:
    """Copy frames both ways until either side closes; then close the other."""
    from aiohttp import WSMsgType

    async def down() -> None:
        async for message in upstream:
            if message.type == WSMsgType.BINARY:
                await browser.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await browser.send_str(message.data)
            else:
                break

    async def up() -> None:
        async for message in browser:
            if message.type == WSMsgType.BINARY:
                await upstream.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await upstream.send_str(message.data)
            else:
                break

    tasks = {
        asyncio.create_task(down(), name="stream-proxy-down"),
        asyncio.create_task(up(), name="stream-proxy-up"),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                _LOGGER.info("browser room relay ended: %s", task.exception())
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await upstream.close()


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
