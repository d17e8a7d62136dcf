"""Live updates: the service's changes pushed to browsers over a WebSocket.

``GET /api/events`` upgrades to a WebSocket.  The server first sends the whole
state (``{"type": "state", ...}``, same body as ``GET /api/state``), then one
message per change: ``{"type": "server", "rooms": [...], "groups": [...],
"streams": [...], "connected": bool}`` when snapserver's state changed
(its notifications, or a change made here), ``{"type": "captures",
"captures": [...]}`` when a capture started, stopped, changed state, or once a
second with fresh level meters while one plays; further topics registered
in :attr:`EventHub.extra` (``{"type": "calibration", ...}``) likewise.  Bursts are coalesced: a slow
browser gets the latest state, never a backlog.  Messages from the browser are
ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

_LOGGER = logging.getLogger(__name__)

TOPICS = ("server", "captures")


class EventHub:
    """Fans change topics out to every connected browser, coalescing bursts."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[str]] = set()
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.sent = 0
        self.extra: dict[str, Callable[[], dict[str, Any]]] = {}
        """More topics: name -> the body of its message (``type`` added)."""

    def publish(self, topic: str) -> None:
        for queue in self._listeners:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(topic)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")

    async def serve(
        self, request: web.Request, snapshot: Callable[[str], dict[str, Any]]
    ) -> web.WebSocketResponse:
        """Run one browser's socket until it closes."""
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        self._sockets.add(ws)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        self._listeners.add(queue)
        sender = asyncio.create_task(self._send(ws, queue, snapshot), name="events-send")
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._listeners.discard(queue)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _send(
        self,
        ws: web.WebSocketResponse,
        queue: asyncio.Queue[str],
        snapshot: Callable[[str], dict[str, Any]],
    ) -> None:
        try:
            await ws.send_json(snapshot("state"))
            while True:
                topics = {await queue.get()}
                while not queue.empty():
                    topics.add(queue.get_nowait())
                for topic in TOPICS:
                    if topic in topics:
                        await ws.send_json(snapshot(topic))
                        self.sent += 1
                for topic, body in self.extra.items():
                    if topic in topics:
                        await ws.send_json({"type": topic, **body()})
                        self.sent += 1
        except (ConnectionError, RuntimeError) as err:
            _LOGGER.debug("events socket closed: %s", err)
