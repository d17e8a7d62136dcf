"""A live view of one snapserver for the service: state, notifications, changes.

:class:`SnapState` keeps a :class:`~broadcaster.control.SnapControl` (the
control library's connection, with its own reconnector) open, holds the last
``Server.GetStatus`` and refreshes it whenever snapserver sends a
notification, then calls ``on_change`` so the web page hears about it.
Changes (volume, mute, group stream, group members, names) are single
JSON-RPC calls with the library's deadline.

:func:`digest` turns snapserver's nested status into the flat rooms / groups /
streams lists the API and the page use.

The API's JSON shapes (rooms with their group, groups with room ids) are this
module's :func:`digest`, kept stable for the page and docs/api.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    ControlConnectionError,
    ControlError,
    NotFoundError,
)
from .transport import PlayerClock

if TYPE_CHECKING:
    from .control import SnapControl

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
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._on_change = on_change
        self._control: SnapControl | None = None
        self._dirty = asyncio.Event()
        self.status: dict[str, Any] | None = None
        self.players = PlayerClock()
        """When each stream's player state last changed (its position's age)."""
        self.connected = False
        self.connects = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def view(self) -> Digest:
        return digest(self.status or {})

    # --- the connection ----------------------------------------------------

    async def run(self) -> None:
        """Stay connected until cancelled: :class:`~broadcaster.control.SnapControl`'s
        reconnector makes the first connection and every later one."""
        from .control import CONNECT_EVENT, DISCONNECT_EVENT, SnapControl

        control = SnapControl(self.host, self.port, timeout=self.timeout, reconnect=True)

        def on_event(event: Any) -> None:
            if event.method == DISCONNECT_EVENT:
                if self.connected:
                    _LOGGER.warning("lost the control connection to snapserver at %s", self.address)
                self.connected = False
                self._on_change()
            else:
                if event.method == CONNECT_EVENT:
                    self.connects += 1
                self._dirty.set()

        control.subscribe(on_event)
        self._control = control
        try:
            control.keep_connected()
            await self._refresh_loop()
        finally:
            self._control = None
            self.connected = False
            await control.close()

    async def _refresh_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                result = await self.call("Server.GetStatus")
            except ControlError as err:
                _LOGGER.debug("cannot read snapserver's status: %s", err)
                continue
            self.status = result.get("server") if isinstance(result, dict) else None
            self.players.update(self.status)
            if not self.connected:
                _LOGGER.info("connected to snapserver at %s", self.address)
            self.connected = True
            self._on_change()

    @property
    def control(self) -> SnapControl:
        """The library connection, for operations beyond this module's (scenes)."""
        control = self._control
        if control is None or not control.connected:
            raise ControlConnectionError(f"not connected to snapserver at {self.address}")
        return control

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One JSON-RPC request with the deadline; the result, or a :class:`ControlError`."""
        return await self.control.call(method, params)

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
        await self.control.set_room_volume(
            current.id,
            current.volume if percent is None else percent,
            current.muted if muted is None else muted,
        )
        await self._reload()
        return self.room(current.id)

    async def set_room_latency(self, room: str, latency_ms: int) -> Room:
        current = self.room(room)
        await self.control.set_room_latency(current.id, latency_ms)
        await self._reload()
        return self.room(current.id)

    async def set_group_volume(self, group: str, percent: int) -> Group:
        """Scale the group's rooms proportionally, like snapweb (broadcaster.rooms)."""
        current = self.group(group)
        status = await self.control.status()
        await self.control.set_group_volume(status.group(current.id), percent)
        await self._reload()
        return self.group(current.id)

    async def party(self, stream: str) -> Group:
        """Every room into one group playing ``stream``."""
        target = self.stream(stream)
        joined = await self.control.party(target.id)
        await self._reload()
        return self.group(joined.id)

    async def set_room_name(self, room: str, name: str) -> Room:
        current = self.room(room)
        await self.control.set_room_name(current.id, name)
        await self._reload()
        return self.room(current.id)

    async def set_group_stream(self, group: str, stream: str) -> Group:
        current = self.group(group)
        target = self.stream(stream)
        await self.control.set_group_stream(current.id, target.id)
        await self._reload()
        return self.group(current.id)

    async def set_group_mute(self, group: str, muted: bool) -> Group:
        current = self.group(group)
        await self.control.set_group_mute(current.id, muted)
        await self._reload()
        return self.group(current.id)

    async def set_group_rooms(self, group: str, rooms: list[str]) -> Group:
        current = self.group(group)
        ids = [self.room(key).id for key in rooms]
        await self.control.set_group_rooms(current.id, ids)
        await self._reload()
        try:
            return self.group(current.id)
        except NotFoundError:  # an emptied group is removed by snapserver
            return dataclasses.replace(current, rooms=[])

    async def _reload(self) -> None:
        """Our own change is not notified back to us: read the new state now."""
        result = await self.call("Server.GetStatus")
        self.status = result.get("server") if isinstance(result, dict) else None
        self.players.update(self.status)
        self._on_change()
