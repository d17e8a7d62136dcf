"""The snapserver control client: python-snapcast with deadlines and real errors.

This module is the one place that touches ``snapcast.control``.  Usage::

    async with SnapControl("127.0.0.1", 1705, timeout=5) as snap:
        status = await snap.status()                 # frozen ServerStatus
        room = status.room("Küche 🎵")               # by name, host or id
        await snap.set_room_volume(room.id, 40)
        async for event in snap.events():            # live notifications
            ...

What it fixes in python-snapcast (2.3):

* **Deadlines.**  python-snapcast waits forever for a reply; every call here
  runs under ``asyncio.timeout`` and a hung server raises
  :class:`~broadcaster.errors.ControlTimeoutError` (also a ``TimeoutError``).
* **Server errors.**  Its setters return ``result or error`` and the model
  classes update their local state even when the server refused.  We call
  its transport (``_transact``, which returns ``(result, error)``) ourselves
  and raise :class:`~broadcaster.errors.ServerReplyError` on an error reply,
  :class:`~broadcaster.errors.ControlConnectionError` when the connection is
  gone.  We never read python-snapcast's model objects: state comes from
  ``Server.GetStatus`` as :class:`~broadcaster.rooms.ServerStatus`.
* **Framing.**  Its ``data_received`` decodes each TCP read on its own (a
  UTF-8 character split across reads raises and drops the connection), only
  parses when a read happens to end in CRLF (a busy server can starve it),
  and lets one bad notification kill the connection.  :class:`_Protocol`
  replaces it with an incremental decoder and line splitting, and isolates
  each message.
* **Reconnect.**  python-snapcast's own ``reconnect=True`` is never used:
  :class:`Reconnector` (a state, one lock, capped exponential backoff) is the
  only owner of reconnecting (``SnapControl(..., reconnect=True)``).

Notifications reach :meth:`SnapControl.subscribe` callbacks and
:meth:`SnapControl.events` iterators as :class:`Event` values; connection
changes arrive as the pseudo-events ``Broadcaster.OnConnect`` and
``Broadcaster.OnDisconnect``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import enum
import functools
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from .backoff import CONTROL_RECONNECT, Backoff, Sleep
from .errors import ControlConnectionError, ControlError, ControlTimeoutError, ServerReplyError
from .rooms import (
    Group,
    Room,
    ServerStatus,
    StreamInfo,
    scale_group_volume,
)

__all__ = [
    "CONNECT_EVENT",
    "DISCONNECT_EVENT",
    "Event",
    "ReconnectState",
    "Reconnector",
    "SnapControl",
    "StreamInfo",
    "fetch_streams",
]

_LOGGER = logging.getLogger(__name__)

CONNECT_EVENT = "Broadcaster.OnConnect"
DISCONNECT_EVENT = "Broadcaster.OnDisconnect"


@dataclass(frozen=True)
class Event:
    """One server notification (``method`` as in snapserver's JSON-RPC API)."""

    method: str
    params: dict[str, Any]


Listener = Callable[[Event], None]


class _Transport(Protocol):
    def is_closing(self) -> bool: ...
    def close(self) -> None: ...


class _SnapServer(Protocol):
    """The parts of ``snapcast.control.Snapserver`` this module uses."""

    _transport: _Transport | None
    _protocol: Any

    async def start(self) -> None: ...
    def stop(self) -> None: ...
    async def _transact(
        self, method: str, params: dict[str, Any] | None = None
    ) -> tuple[Any, Any]: ...
    def set_on_disconnect_callback(self, func: Callable[[Exception | None], None]) -> None: ...


MAX_MESSAGE_CHARS = 16 << 20
"""The longest message taken from snapserver (a status of hundreds of rooms is
well under 1 MiB); anything longer is skipped, so memory stays bounded."""


@functools.cache
def _classes() -> tuple[type[Any], type[Any]]:
    """python-snapcast's protocol and server classes with our fixes (imported lazily)."""
    from snapcast.control.protocol import SnapcastProtocol
    from snapcast.control.server import Snapserver

    class FixedProtocol(SnapcastProtocol):  # type: ignore[misc]
        """Incremental UTF-8, line framing, one bad message never drops the connection."""

        def __init__(
            self,
            callbacks: dict[str, Any],
            on_message: Callable[[dict[str, Any]], None] = lambda _m: None,
        ) -> None:
            super().__init__(callbacks)
            self._on_message = on_message
            self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
            self._text = ""
            self._skipping = False
            """Inside a message over MAX_MESSAGE_CHARS: drop until its line ends."""

        def data_received(self, data: bytes) -> None:
            text = self._decoder.decode(data)
            if self._skipping:
                end = text.find("\n")
                if end < 0:
                    return
                text, self._skipping = text[end + 1 :], False
            if "\n" not in text:  # a long message arriving: no rescan of what came before
                self._text += text
            else:
                *lines, self._text = (self._text + text).split("\n")
                for line in lines:
                    if line.strip():
                        self._line(line)
            if len(self._text) > MAX_MESSAGE_CHARS:
                _LOGGER.warning(
                    "snapserver sent a message of more than %d MiB; skipping it",
                    MAX_MESSAGE_CHARS >> 20,
                )
                self._text, self._skipping = "", True

        def _line(self, line: str) -> None:
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                _LOGGER.warning("snapserver sent a line that is not JSON: %.80r", line)
                return
            for item in message if isinstance(message, list) else [message]:
                if not isinstance(item, dict):
                    continue
                if "id" not in item:
                    self._on_message(item)
                try:
                    self.handle_data(item)
                except Exception:  # python-snapcast's model can trip over any message
                    _LOGGER.debug("python-snapcast failed on %s", item, exc_info=True)

    class FixedServer(Snapserver):  # type: ignore[misc]
        on_message: Callable[[dict[str, Any]], None] = staticmethod(lambda _m: None)

        async def _do_connect(self) -> None:
            self._transport, self._protocol = await self._loop.create_connection(
                lambda: FixedProtocol(self._callbacks, self.on_message), self._host, self._port
            )

    return FixedProtocol, FixedServer


def _make_server(host: str, port: int, on_message: Callable[[dict[str, Any]], None]) -> _SnapServer:
    """A python-snapcast Snapserver speaking through our fixed protocol class."""
    server_class = _classes()[1]
    server: _SnapServer = server_class(asyncio.get_running_loop(), host, port, reconnect=False)
    server.on_message = on_message  # type: ignore[attr-defined]
    return server


class ReconnectState(enum.Enum):
    CONNECTED = "connected"
    WAITING = "waiting"
    CONNECTING = "connecting"
    STOPPED = "stopped"


class Reconnector:
    """Keeps a connection up: one owner, one lock, capped backoff.

    ``connect`` is the coroutine that (re)establishes the connection.  After a
    loss (:meth:`lost`) it is retried after ``initial`` s, doubling (with 10 %
    jitter, :data:`~broadcaster.backoff.CONTROL_RECONNECT`) up to ``maximum``
    s; :meth:`begin` makes the first connection the same way, trying at once.
    ``sleep`` is injectable for tests; :meth:`retry_now` cuts the wait short
    (e.g. when mDNS sees the server).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[None]],
        *,
        initial: float = CONTROL_RECONNECT.first,
        maximum: float = CONTROL_RECONNECT.cap,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._connect = connect
        self.initial = initial
        self.maximum = maximum
        self._backoff = Backoff(
            dataclasses.replace(CONTROL_RECONNECT, first=initial, cap=maximum), sleep=sleep
        )
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.state = ReconnectState.CONNECTED
        self.attempts = 0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (1-based)."""
        return self._backoff.policy.delay(attempt, random.random())

    def lost(self) -> None:
        """The connection is gone: start reconnecting (once)."""
        self._launch(wait_first=True)

    def begin(self) -> None:
        """Connect now, and keep trying until connected (the first connection)."""
        if self._stopped():
            self.state = ReconnectState.WAITING
        self._launch(wait_first=False)

    def _launch(self, *, wait_first: bool) -> None:
        if self._stopped() or (self._task is not None and not self._task.done()):
            return
        self.state = ReconnectState.WAITING
        self._task = asyncio.get_running_loop().create_task(
            self._run(wait_first), name="snapserver-reconnect"
        )
        self._task.add_done_callback(self._done)

    def retry_now(self) -> None:
        self._wake.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("reconnecting failed", exc_info=task.exception())

    async def _run(self, wait_first: bool) -> None:
        self.attempts = 0
        wait = wait_first
        while not self._stopped():
            if wait:
                self.attempts += 1
                self._wake.clear()
                await self._backoff.sleep(self.delay(self.attempts), self._wake)
            wait = True
            async with self._lock:
                if self._stopped():
                    return
                self.state = ReconnectState.CONNECTING
                try:
                    await self._connect()
                except ControlError as err:
                    _LOGGER.info("connect attempt %d failed: %s", self.attempts + 1, err)
                    self.state = ReconnectState.WAITING
                    continue
                self.state = ReconnectState.CONNECTED
                return

    def _stopped(self) -> bool:
        return self.state is ReconnectState.STOPPED

    def start(self) -> None:
        """Allow reconnecting again after :meth:`stop` (the connection is up)."""
        self.state = ReconnectState.CONNECTED

    async def stop(self) -> None:
        self.state = ReconnectState.STOPPED
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class SnapControl:
    """A control connection to one snapserver (an async context manager).

    Every method has a deadline of ``timeout`` seconds.  With
    ``reconnect=True`` a lost connection is re-established in the background
    (calls made meanwhile raise :class:`ControlConnectionError`).
    """

    def __init__(
        self, host: str, port: int = 1705, *, timeout: float = 5.0, reconnect: bool = False
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._server: _SnapServer | None = None
        self._listeners: list[Listener] = []
        self._reconnector = Reconnector(self._connect) if reconnect else None
        self._connected = asyncio.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def reconnector(self) -> Reconnector | None:
        return self._reconnector

    async def __aenter__(self) -> SnapControl:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect; raises ControlError if the server is not there.

        A failed first connect is not retried in the background: that is the
        caller's choice.  Once connected, losses are (with ``reconnect=True``).
        """
        await self._connect()
        if self._reconnector is not None:
            self._reconnector.start()

    async def _connect(self) -> None:
        server = _make_server(self.host, self.port, self._on_notification)
        server.set_on_disconnect_callback(lambda exc: self._on_disconnect(server, exc))
        try:
            async with asyncio.timeout(self.timeout):
                await server.start()
        except TimeoutError:
            server.stop()
            raise ControlTimeoutError(
                f"snapserver at {self.address} did not answer within {self.timeout:g} s"
            ) from None
        except OSError as err:
            server.stop()
            reason = err.strerror or "it sent no valid status"
            raise ControlConnectionError(
                f"cannot reach snapserver at {self.address}: {reason}"
            ) from None
        old, self._server = self._server, server
        if old is not None:  # connect() while connected: one connection only
            old.stop()
        self._connected.set()
        _LOGGER.debug("connected to snapserver at %s", self.address)
        self._emit(Event(CONNECT_EVENT, {"address": self.address}))

    def _on_disconnect(self, server: _SnapServer, exc: Exception | None) -> None:
        if server is not self._server:
            return
        self._server = None
        self._connected.clear()
        _LOGGER.info("lost the connection to snapserver at %s", self.address)
        self._emit(Event(DISCONNECT_EVENT, {"address": self.address}))
        if self._reconnector is not None:
            self._reconnector.lost()

    async def close(self) -> None:
        if self._reconnector is not None:
            await self._reconnector.stop()
        server, self._server = self._server, None
        self._connected.clear()
        if server is not None:
            server.stop()

    def keep_connected(self) -> None:
        """Connect in the background and stay connected (needs ``reconnect=True``):
        the reconnector makes the first connection too, with the same backoff."""
        if self._reconnector is None:
            raise ControlError("keep_connected needs a SnapControl made with reconnect=True")
        self._reconnector.begin()

    async def wait_connected(self, timeout: float) -> None:
        """Wait until (re)connected, at most ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            raise ControlTimeoutError(
                f"snapserver at {self.address} did not come back within {timeout:g} s"
            ) from None

    # -- notifications -------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every notification; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @contextlib.asynccontextmanager
    async def _queue(self, size: int) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(size)

        def put(event: Event) -> None:
            if queue.full():  # a slow consumer loses the oldest, never blocks the reader
                queue.get_nowait()
            queue.put_nowait(event)

        unsubscribe = self.subscribe(put)
        try:
            yield queue
        finally:
            unsubscribe()

    async def events(self, size: int = 1000) -> AsyncIterator[Event]:
        """Notifications as an async iterator (ends when the caller stops iterating)."""
        async with self._queue(size) as queue:
            while True:
                yield await queue.get()

    def _on_notification(self, message: dict[str, Any]) -> None:
        params = message.get("params")
        self._emit(
            Event(str(message.get("method", "")), params if isinstance(params, dict) else {})
        )

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _LOGGER.exception("a notification listener failed on %s", event.method)

    # -- requests --------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One JSON-RPC request with the deadline; the ``result`` or a ControlError."""
        server = self._server
        if server is None or server._transport is None or server._transport.is_closing():
            raise ControlConnectionError(f"not connected to snapserver at {self.address}")
        try:
            async with asyncio.timeout(self.timeout):
                result, error = await server._transact(method, params or {})
        except TimeoutError:
            raise ControlTimeoutError(
                f"snapserver at {self.address} did not answer {method} within "
                f"{self.timeout:g} s (is it hung?)"
            ) from None
        if error is not None:
            text = error.get("message", error) if isinstance(error, dict) else error
            if server is not self._server or (isinstance(error, dict) and error.get("code") == -1):
                raise ControlConnectionError(
                    f"lost the connection to snapserver at {self.address} during {method}"
                )
            raise ServerReplyError(f"snapserver refused {method}: {text}")
        return result

    async def status(self) -> ServerStatus:
        result = await self.call("Server.GetStatus")
        if not isinstance(result, dict) or "server" not in result:
            raise ControlError(f"snapserver at {self.address} sent a malformed status")
        return ServerStatus.from_json(result)

    async def set_room_volume(self, room_id: str, percent: int, muted: bool | None = None) -> None:
        volume: dict[str, Any] = {"percent": max(0, min(100, int(percent)))}
        if muted is not None:
            volume["muted"] = muted
        await self.call("Client.SetVolume", {"id": room_id, "volume": volume})

    async def set_room_mute(self, room_id: str, muted: bool) -> None:
        await self.call("Client.SetVolume", {"id": room_id, "volume": {"muted": muted}})

    async def set_room_latency(self, room_id: str, latency_ms: int) -> None:
        await self.call("Client.SetLatency", {"id": room_id, "latency": int(latency_ms)})

    async def set_room_name(self, room_id: str, name: str) -> None:
        await self.call("Client.SetName", {"id": room_id, "name": name})

    async def delete_room(self, room_id: str) -> None:
        await self.call("Server.DeleteClient", {"id": room_id})

    async def set_group_mute(self, group_id: str, muted: bool) -> None:
        await self.call("Group.SetMute", {"id": group_id, "mute": muted})

    async def set_group_stream(self, group_id: str, stream_id: str) -> None:
        await self.call("Group.SetStream", {"id": group_id, "stream_id": stream_id})

    async def set_group_name(self, group_id: str, name: str) -> None:
        await self.call("Group.SetName", {"id": group_id, "name": name})

    async def set_group_rooms(self, group_id: str, room_ids: list[str]) -> None:
        """Make ``room_ids`` the rooms of the group (rooms left out get groups of their own)."""
        await self.call("Group.SetClients", {"id": group_id, "clients": list(room_ids)})

    async def set_group_volume(self, group: Group, percent: int) -> dict[str, int]:
        """Scale the group's rooms to ``percent`` like snapweb; returns the new volumes."""
        volumes = scale_group_volume(group.rooms, percent)
        by_id = {r.id: r for r in group.rooms}
        for room_id, volume in volumes.items():
            if by_id[room_id].volume != volume:
                await self.set_room_volume(room_id, volume)
        return volumes

    async def join(self, rooms: list[Room], group: Group) -> None:
        """Move ``rooms`` into ``group`` (keeping its rooms)."""
        ids = [r.id for r in group.rooms]
        ids += [r.id for r in rooms if r.id not in ids]
        await self.set_group_rooms(group.id, ids)

    async def leave(self, room: Room, status: ServerStatus) -> None:
        """Take ``room`` out of its group (snapserver gives it a group of its own)."""
        group = status.group_of(room)
        if len(group.rooms) <= 1:
            return
        await self.set_group_rooms(group.id, [r.id for r in group.rooms if r.id != room.id])

    async def party(self, stream_id: str) -> Group:
        """Every room into one group playing ``stream_id``; returns that group."""
        status = await self.status()
        if not status.groups:
            raise ControlError("snapserver has no rooms to group")
        target = max(status.groups, key=lambda g: len(g.rooms))
        await self.set_group_rooms(target.id, [r.id for r in status.rooms])
        await self.set_group_stream(target.id, stream_id)
        return (await self.status()).group(target.id)


async def fetch_streams(host: str, port: int, timeout: float) -> list[StreamInfo]:
    """The streams of the snapserver at ``host:port`` (connect, one status, close)."""
    async with SnapControl(host, port, timeout=timeout) as snap:
        return list((await snap.status()).streams)
