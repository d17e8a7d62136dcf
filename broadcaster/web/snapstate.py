"""A live view of one snapserver for the service: state, notifications, changes.

:class:`SnapState` keeps one JSON-RPC connection to snapserver's control port
open (reconnecting with capped backoff), holds the last ``Server.GetStatus``
and refreshes it whenever snapserver sends a notification, then calls
``on_change`` so the web page hears about it.  Changes (volume, mute, group
stream, group members, names) are single JSON-RPC calls with a deadline.

:func:`digest` turns snapserver's nested status into the flat rooms / groups /
streams lists the API and the page use.

This is the service's own small client until ``broadcaster.control`` (issue 3)
grows a persistent, notification-aware one; the API only uses the methods
below, so switching is local to this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    ControlConnectionError,
    ControlError,
    ControlTimeoutError,
    NotFoundError,
    ServerReplyError,
)

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    connected: bool
    volume: int
    muted: bool
    group: str
    latency: int


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    stream: str
    muted: bool
    rooms: list[str]


@dataclass(frozen=True)
class Stream:
    id: str
    status: str
    uri: str
    title: str
    artist: str


@dataclass(frozen=True)
class Digest:
    rooms: list[Room]
    groups: list[Group]
    streams: list[Stream]


def digest(status: dict[str, Any]) -> Digest:
    """Flatten a ``Server.GetStatus`` result (the ``server`` object or the whole result)."""
    # The result wraps the server object, which has a "server" key of its own (host info).
    server = status if "groups" in status else status.get("server") or {}
    rooms: list[Room] = []
    groups: list[Group] = []
    for group in server.get("groups") or []:
        members = []
        for client in group.get("clients") or []:
            config = client.get("config") or {}
            volume = config.get("volume") or {}
            host = client.get("host") or {}
            rooms.append(
                Room(
                    id=str(client.get("id", "")),
                    name=str(config.get("name") or host.get("name") or client.get("id", "")),
                    connected=bool(client.get("connected")),
                    volume=int(volume.get("percent", 0)),
                    muted=bool(volume.get("muted")),
                    group=str(group.get("id", "")),
                    latency=int(config.get("latency", 0)),
                )
            )
            members.append(str(client.get("id", "")))
        groups.append(
            Group(
                id=str(group.get("id", "")),
                name=str(group.get("name", "")),
                stream=str(group.get("stream_id", "")),
                muted=bool(group.get("muted")),
                rooms=members,
            )
        )
    streams = []
    for stream in server.get("streams") or []:
        meta = (stream.get("properties") or {}).get("metadata") or {}
        artist = meta.get("artist") or ""
        if isinstance(artist, list):
            artist = ", ".join(str(a) for a in artist)
        streams.append(
            Stream(
                id=str(stream.get("id", "")),
                status=str(stream.get("status", "")),
                uri=str((stream.get("uri") or {}).get("raw", "")),
                title=str(meta.get("title") or ""),
                artist=str(artist),
            )
        )
    return Digest(rooms, groups, streams)


class SnapState:
    """One snapserver's state, kept current over a persistent control connection."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        on_change: Callable[[], None] = lambda: None,
        backoff_first: float = 0.2,
        backoff_cap: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._on_change = on_change
        self._backoff = (backoff_first, backoff_cap)
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._dirty = asyncio.Event()
        self.status: dict[str, Any] | None = None
        self.connected = False
        self.connects = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def view(self) -> Digest:
        return digest(self.status or {})

    # --- the connection ----------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled."""
        delay = self._backoff[0]
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError) as err:
                _LOGGER.debug("snapserver at %s unreachable: %s", self.address, err)
            else:
                delay = self._backoff[0]
                await self._serve(reader, writer)
            await asyncio.sleep(delay)
            delay = min(self._backoff[1], delay * 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.connects += 1
        async with asyncio.TaskGroup() as tasks:
            reading = tasks.create_task(self._read(reader), name="snapstate-read")
            refreshing = tasks.create_task(self._refresh_loop(), name="snapstate-refresh")
            self._dirty.set()
            await reading
            refreshing.cancel()
        self._writer = None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ControlConnectionError(self._lost()))
        self._pending.clear()
        if self.connected:
            _LOGGER.warning("lost the control connection to snapserver at %s", self.address)
        self.connected = False
        self._on_change()

    def _lost(self) -> str:
        return f"lost the connection to snapserver at {self.address}"

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            try:
                message = json.loads(line)
            except ValueError:
                _LOGGER.warning("snapserver sent a malformed line: %.80r", line)
                continue
            for item in message if isinstance(message, list) else [message]:
                self._dispatch(item)

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        if "id" in message and message["id"] in self._pending:
            future = self._pending.pop(message["id"])
            if not future.done():
                future.set_result(message)
        elif "method" in message:
            _LOGGER.debug("notification %s", message["method"])
            self._dirty.set()

    async def _refresh_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                result = await self.call("Server.GetStatus")
            except ControlError as err:
                _LOGGER.warning("cannot read snapserver's status: %s", err)
                continue
            self.status = result.get("server") if isinstance(result, dict) else None
            if not self.connected:
                _LOGGER.info("connected to snapserver at %s", self.address)
            self.connected = True
            self._on_change()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One JSON-RPC request; the result, or a :class:`ControlError`."""
        writer = self._writer
        if writer is None:
            raise ControlConnectionError(f"not connected to snapserver at {self.address}")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        request = {"id": request_id, "jsonrpc": "2.0", "method": method, "params": params or {}}
        try:
            writer.write(json.dumps(request).encode() + b"\r\n")
            async with asyncio.timeout(self.timeout):
                message = await future
        except TimeoutError:
            raise ControlTimeoutError(
                f"snapserver at {self.address} did not answer {method} within {self.timeout:g} s"
            ) from None
        except OSError as err:
            raise ControlConnectionError(f"{self._lost()}: {err.strerror}") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in message:
            error = message["error"]
            text = error.get("message", error) if isinstance(error, dict) else error
            raise ServerReplyError(f"snapserver refused {method}: {text}")
        return message.get("result") or {}

    def refresh_soon(self) -> None:
        self._dirty.set()

    # --- lookups -----------------------------------------------------------

    def _known(self) -> Digest:
        if self.status is None:
            raise ControlConnectionError(f"not connected to snapserver at {self.address} yet")
        return self.view()

    def room(self, key: str) -> Room:
        rooms = self._known().rooms
        for room in rooms:
            if room.id == key:
                return room
        named = [room for room in rooms if room.name == key]
        if len(named) == 1:
            return named[0]
        raise NotFoundError(f"there is no room {key!r}")

    def group(self, key: str) -> Group:
        for group in self._known().groups:
            if key in (group.id, group.name):
                return group
        raise NotFoundError(f"there is no group {key!r}")

    def stream(self, key: str) -> Stream:
        for stream in self._known().streams:
            if stream.id == key:
                return stream
        raise NotFoundError(f"there is no stream {key!r}")

    # --- changes -----------------------------------------------------------

    async def set_volume(self, room: str, percent: int | None, muted: bool | None) -> Room:
        current = self.room(room)
        volume = {
            "percent": current.volume if percent is None else percent,
            "muted": current.muted if muted is None else muted,
        }
        await self.call("Client.SetVolume", {"id": current.id, "volume": volume})
        await self._reload()
        return self.room(current.id)

    async def set_room_name(self, room: str, name: str) -> Room:
        current = self.room(room)
        await self.call("Client.SetName", {"id": current.id, "name": name})
        await self._reload()
        return self.room(current.id)

    async def set_group_stream(self, group: str, stream: str) -> Group:
        current = self.group(group)
        target = self.stream(stream)
        await self.call("Group.SetStream", {"id": current.id, "stream_id": target.id})
        await self._reload()
        return self.group(current.id)

    async def set_group_mute(self, group: str, muted: bool) -> Group:
        current = self.group(group)
        await self.call("Group.SetMute", {"id": current.id, "mute": muted})
        await self._reload()
        return self.group(current.id)

    async def set_group_rooms(self, group: str, rooms: list[str]) -> Group:
        current = self.group(group)
        ids = [self.room(key).id for key in rooms]
        await self.call("Group.SetClients", {"id": current.id, "clients": ids})
        await self._reload()
        try:
            return self.group(current.id)
        except NotFoundError:  # an emptied group is removed by snapserver
            return dataclasses.replace(current, rooms=[])

    async def _reload(self) -> None:
        """Our own change is not notified back to us: read the new state now."""
        result = await self.call("Server.GetStatus")
        self.status = result.get("server") if isinstance(result, dict) else None
        self._on_change()
