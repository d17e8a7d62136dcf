"""The snapserver control client: requests with deadlines and real errors.

Usage::

    async with SnapControl("127.0.0.1", 1705, timeout=5) as snap:
        status = snap.last_status                    # read once at connect
        room = status.room("Küche 🎵")               # by name, host or id
        await snap.set_room_volume(room.id, 40)
        async for event in snap.events():            # live notifications
            ...

:class:`SnapControl` is the transport: connect (one ``Server.GetStatus``,
kept as :attr:`SnapControl.last_status`, proves the server answers), one
method per JSON-RPC request, notifications.  The wire (python-snapcast's
protocol class with deadlines, errors and UTF-8 framing) is
:mod:`broadcaster.snaprpc`, the one module that touches python-snapcast.
Operations that span several requests (party, join, leave, group volume) are
in :mod:`broadcaster.house`.

**Reconnect.**  :class:`Reconnector` (a state, one lock, capped exponential
backoff) is the only owner of (re)connecting (``SnapControl(...,
reconnect=True)``; :meth:`SnapControl.keep_connected` for the first
connection too).

Notifications reach :meth:`SnapControl.subscribe` callbacks and
:meth:`SnapControl.events` iterators as :class:`Event` values; connection
changes arrive as the pseudo-events ``Broadcaster.OnConnect`` and
``Broadcaster.OnDisconnect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from . import jsonrpc
from .backoff import CONTROL_RECONNECT, Backoff, Policy, Sleep
from .errors import ControlError, ControlTimeoutError
from .lifecycle import Resource, cancel_and_wait
from .rooms import ServerStatus, StreamInfo, check_latency
from .snaprpc import Connection

__all__ = [
    "CONNECT_EVENT",
    "DISCONNECT_EVENT",
    "Event",
    "ReconnectState",
    "Reconnector",
    "SnapControl",
    "StreamInfo",
    "Watch",
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

Watch = Callable[[Callable[[], None]], AbstractAsyncContextManager[object]]
"""Something that calls its argument whenever the server may be back (an mDNS
sighting: :func:`broadcaster.discovery.sightings`), for as long as the block runs."""


class ReconnectState(enum.Enum):
    CONNECTED = "connected"
    WAITING = "waiting"
    CONNECTING = "connecting"
    STOPPED = "stopped"


class Reconnector:
    """Keeps a connection up: one owner, one lock, capped backoff.

    ``connect`` is the coroutine that (re)establishes the connection.  After a
    loss (:meth:`lost`) it is retried after the waits ``policy`` says
    (:data:`~broadcaster.backoff.CONTROL_RECONNECT` unless given: doubling,
    with jitter, up to a cap); :meth:`begin` makes the first connection the
    same way, trying at once.  ``sleep`` is injectable for tests;
    :meth:`retry_now` cuts the wait short.  ``watch``, if given, runs from the
    first wait until connected (or stopped), and calls :meth:`retry_now`
    whenever the server may be back: an mDNS announcement of it ends the wait
    at once instead of after up to the policy's cap.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[object]],
        *,
        policy: Policy = CONTROL_RECONNECT,
        sleep: Sleep = asyncio.sleep,
        watch: Watch | None = None,
    ) -> None:
        self._connect = connect
        self._watch = watch
        self.watching = False
        """Whether ``watch`` runs now (only while waiting to reconnect)."""
        self._backoff = Backoff(policy, sleep=sleep)
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
        """Try at once: end the current wait, or skip the next one if an attempt is
        under way (the server may have come back during it)."""
        if self.state is ReconnectState.WAITING and not self._wake.is_set():
            _LOGGER.info("the server may be back: reconnecting now")
        self._wake.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("reconnecting failed", exc_info=task.exception())

    async def _run(self, wait_first: bool) -> None:
        async with contextlib.AsyncExitStack() as watching:
            try:
                await self._reconnect(wait_first, watching)
            finally:
                self.watching = False

    async def _reconnect(self, wait_first: bool, watching: contextlib.AsyncExitStack) -> None:
        self.attempts = 0
        self._wake.clear()
        wait = wait_first
        watch = self._watch
        while not self._stopped():
            if wait:
                if watch is not None:
                    # Only now: a first connection that succeeds at once browses nothing.
                    try:
                        await watching.enter_async_context(watch(self.retry_now))
                        self.watching = True
                    except Exception as err:  # the backoff alone still reconnects
                        _LOGGER.warning("cannot watch for the server coming back: %s", err)
                    watch = None
                self.attempts += 1
                await self._backoff.sleep(self.delay(self.attempts), self._wake)
            wait = True
            async with self._lock:
                if self._stopped():
                    return
                self.state = ReconnectState.CONNECTING
                self._wake.clear()  # a sighting from now on wakes the next wait
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
        await cancel_and_wait(task)


class SnapControl(Resource):
    """A control connection to one snapserver (an async context manager).

    Every method has a deadline of ``timeout`` seconds.  With
    ``reconnect=True`` a lost connection is re-established in the background
    (calls made meanwhile raise :class:`ControlConnectionError`), waiting as
    ``backoff`` says, cut short by ``watch`` (see :class:`Reconnector`).
    """

    def __init__(
        self,
        host: str,
        port: int = 1705,
        *,
        timeout: float = jsonrpc.DEFAULT_TIMEOUT,
        reconnect: bool = False,
        backoff: Policy = CONTROL_RECONNECT,
        watch: Watch | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._server: Connection | None = None
        self.last_status: ServerStatus | None = None
        """The status read when the connection was (re)made."""
        self._listeners: list[Listener] = []
        self._reconnector = (
            Reconnector(self._connect, policy=backoff, watch=watch) if reconnect else None
        )
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

    async def start(self) -> ServerStatus:
        """``async with SnapControl(...)``: :meth:`connect`, and :meth:`close` after."""
        return await self.connect()

    async def stop(self) -> None:
        await self.close()

    async def connect(self) -> ServerStatus:
        """Connect and read the status; raises ControlError if the server is not there.

        A failed first connect is not retried in the background: that is the
        caller's choice.  Once connected, losses are (with ``reconnect=True``).
        """
        status = await self._connect()
        if self._reconnector is not None:
            self._reconnector.start()
        return status

    async def _connect(self) -> ServerStatus:
        """One connection, proven by one ``Server.GetStatus`` (within the deadline)."""
        server = await Connection.open(
            self.host,
            self.port,
            timeout=self.timeout,
            on_message=self._on_notification,
            on_lost=self._on_disconnect,
        )
        try:
            result = await server.request("Server.GetStatus", None, self.timeout)
        except ControlTimeoutError:
            server.close()
            raise jsonrpc.no_answer(self.address, self.timeout) from None
        except ControlError:
            server.close()
            raise
        if not jsonrpc.is_status(result):
            server.close()
            raise jsonrpc.no_valid_status(self.address)
        old, self._server = self._server, server
        if old is not None:  # connect() while connected: one connection only
            old.close()
        self.last_status = ServerStatus.from_json(result)
        self._connected.set()
        _LOGGER.debug("connected to snapserver at %s", self.address)
        self._emit(Event(CONNECT_EVENT, {"address": self.address}))
        return self.last_status

    def _on_disconnect(self, server: Connection) -> None:
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
            server.close()

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
        if server is None:
            raise jsonrpc.not_connected(self.address)
        return await server.request(method, params, self.timeout)

    async def status(self) -> ServerStatus:
        """Read the status now (also kept as :attr:`last_status`)."""
        result = await self.call("Server.GetStatus")
        if not jsonrpc.is_status(result):
            raise ControlError(f"snapserver at {self.address} sent a malformed status")
        self.last_status = ServerStatus.from_json(result)
        return self.last_status

    async def set_room_volume(self, room_id: str, percent: int, muted: bool | None = None) -> None:
        volume: dict[str, Any] = {"percent": max(0, min(100, int(percent)))}
        if muted is not None:
            volume["muted"] = muted
        await self.call("Client.SetVolume", {"id": room_id, "volume": volume})

    async def set_room_mute(self, room_id: str, muted: bool) -> None:
        await self.call("Client.SetVolume", {"id": room_id, "volume": {"muted": muted}})

    async def set_room_latency(self, room_id: str, latency_ms: int) -> int:
        """Set a room's latency (:func:`~broadcaster.rooms.check_latency`); returns the
        latency snapserver applied, which it may have lowered to its stream buffer."""
        wanted = check_latency(int(latency_ms))
        result = await self.call("Client.SetLatency", {"id": room_id, "latency": wanted})
        applied = result.get("latency") if isinstance(result, dict) else None
        if not isinstance(applied, int) or isinstance(applied, bool):
            return wanted
        if applied != wanted:
            _LOGGER.warning(
                "snapserver set the latency of %s to %d ms, not %d (its limit)",
                room_id,
                applied,
                wanted,
            )
        return applied

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


async def fetch_streams(host: str, port: int, timeout: float) -> list[StreamInfo]:
    """The streams of the snapserver at ``host:port`` (connect, one status, close)."""
    snap = SnapControl(host, port, timeout=timeout)
    try:
        return list((await snap.connect()).streams)
    finally:
        await snap.close()
