"""A live view of one snapserver for the service: state, notifications, changes.

:class:`SnapState` keeps a :class:`~broadcaster.control.SnapControl` (the
control library's connection, whose reconnector makes the first connection
and every later one) open, holds the last ``Server.GetStatus`` as the
library's model (:class:`~broadcaster.rooms.ServerStatus`, :attr:`SnapState.server`)
and refreshes it whenever snapserver sends a notification, then calls
``on_change`` so the web page hears about it.  Changes (volume, mute, group
stream, group members, names) are single JSON-RPC calls with the library's
deadline.

Rooms, groups and streams are found by :class:`~broadcaster.rooms.ServerStatus`'s
resolver, the same as the CLI's and the scenes': by id, name or (rooms) host
name, exact first, then ignoring case; an ambiguous name is an
:class:`~broadcaster.errors.AmbiguousNameError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from . import house
from .backoff import CONTROL_RECONNECT, Policy
from .errors import ControlConnectionError, ControlError, NotFoundError
from .rooms import Group, Room, ServerStatus, StreamInfo
from .transport import PlayerClock

if TYPE_CHECKING:
    from .control import SnapControl

_LOGGER = logging.getLogger(__name__)

_Item = TypeVar("_Item", Room, Group)


class SnapState:
    """One snapserver's state, kept current over a persistent control connection."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        on_change: Callable[[], None] = lambda: None,
        backoff: Policy = CONTROL_RECONNECT,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.backoff = backoff
        """How long the connection waits before each reconnect attempt."""
        self._on_change = on_change
        self._control: SnapControl | None = None
        self._dirty = asyncio.Event()
        self._status: dict[str, Any] | None = None
        self.server: ServerStatus | None = None
        """The last known state as the library's model: what everything reads."""
        self.players = PlayerClock()
        """When each stream's player state last changed (its position's age)."""
        self.connected = False
        self._up = asyncio.Event()  # set while connected with a status read
        self.connects = 0

    @property
    def status(self) -> dict[str, Any] | None:
        """The last ``Server.GetStatus`` server object as snapserver sent it."""
        return self._status

    @status.setter
    def status(self, value: dict[str, Any] | None) -> None:
        self._status = value
        self.server = None if value is None else ServerStatus.from_json({"server": value})
        self.players.update(value)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def view(self) -> ServerStatus:
        """The last known state (nothing while never connected)."""
        return self.server if self.server is not None else _EMPTY

    # --- the connection ----------------------------------------------------

    async def run(self, *, mdns: bool = False) -> None:
        """Stay connected until cancelled: :class:`~broadcaster.control.SnapControl`'s
        reconnector makes the first connection and every later one.

        With ``mdns``, while it waits to reconnect it also browses mDNS, and an
        announcement of this server ends the wait (:func:`~broadcaster.discovery.sightings`).
        """
        from .control import CONNECT_EVENT, DISCONNECT_EVENT, SnapControl, Watch

        watch: Watch | None = None
        if mdns:
            from .discovery import sightings

            def watch(wake: Callable[[], None]) -> AbstractAsyncContextManager[object]:
                return sightings(self.host, self.port, wake)

        control = SnapControl(
            self.host,
            self.port,
            timeout=self.timeout,
            reconnect=True,
            backoff=self.backoff,
            watch=watch,
        )

        def on_event(event: Any) -> None:
            if event.method == DISCONNECT_EVENT:
                if self.connected:
                    _LOGGER.warning("lost the control connection to snapserver at %s", self.address)
                self.connected = False
                self._up.clear()
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
            self._up.clear()
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
            self._keep(result)
            if not self.connected:
                _LOGGER.info("connected to snapserver at %s", self.address)
            self.connected = True
            self._up.set()
            self._on_change()

    async def wait_known(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the first status read (a service that has
        just started does not know the server's streams yet)."""
        if self.server is None:
            try:
                async with asyncio.timeout(timeout):
                    await self._up.wait()
            except TimeoutError:
                pass

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

    def known(self) -> ServerStatus:
        """The last known state; :class:`ControlConnectionError` while never connected."""
        if self.server is None:
            raise ControlConnectionError(f"not connected to snapserver at {self.address} yet")
        return self.server

    def room(self, key: str) -> Room:
        """The room with this id, name or host name (see :meth:`ServerStatus.room`)."""
        return self.known().room(key)

    def group(self, key: str) -> Group:
        """The group with this id or name, or the group of the room with this name."""
        return self.known().group(key)

    def stream(self, key: str) -> StreamInfo:
        return self.known().stream(key)

    # --- changes -----------------------------------------------------------

    async def _change(
        self, find: Callable[[str], _Item], key: str, call: Callable[[SnapControl, _Item], Any]
    ) -> _Item:
        """Find the room or group, make the change, return it as snapserver has it now."""
        current = find(key)
        await call(self.control, current)
        await self._reload()
        return find(current.id)

    async def set_volume(self, room: str, percent: int | None, muted: bool | None) -> Room:
        return await self._change(
            self.room,
            room,
            lambda control, r: control.set_room_volume(
                r.id, r.volume if percent is None else percent, r.muted if muted is None else muted
            ),
        )

    async def set_room_latency(self, room: str, latency_ms: int) -> Room:
        return await self._change(
            self.room, room, lambda control, r: control.set_room_latency(r.id, latency_ms)
        )

    async def set_room_name(self, room: str, name: str) -> Room:
        return await self._change(
            self.room, room, lambda control, r: control.set_room_name(r.id, name)
        )

    async def set_group_volume(self, group: str, percent: int) -> Group:
        """Scale the group's rooms proportionally, like snapweb (broadcaster.rooms)."""
        return await self._change(
            self.group, group, lambda control, g: house.set_group_volume(control, g, percent)
        )

    async def set_group_stream(self, group: str, stream: str) -> Group:
        return await self._change(
            self.group,
            group,
            lambda control, g: control.set_group_stream(g.id, self.stream(stream).id),
        )

    async def set_group_mute(self, group: str, muted: bool) -> Group:
        return await self._change(
            self.group, group, lambda control, g: control.set_group_mute(g.id, muted)
        )

    async def party(self, stream: str) -> Group:
        """Every room into one group playing ``stream``."""
        target = self.stream(stream)
        joined = await house.party(self.control, target.id, self.known())
        await self._reload()
        return self.group(joined.id)

    async def set_group_rooms(self, group: str, rooms: list[str]) -> Group:
        current = self.group(group)
        ids = [self.room(key).id for key in rooms]
        await self.control.set_group_rooms(current.id, ids)
        await self._reload()
        try:
            return self.group(current.id)
        except NotFoundError:  # an emptied group is removed by snapserver
            return dataclasses.replace(current, rooms=())

    async def _reload(self) -> None:
        """Our own change is not notified back to us: read the new state now."""
        self._keep(await self.call("Server.GetStatus"))
        self._on_change()

    def _keep(self, result: Any) -> None:
        server = result.get("server") if isinstance(result, dict) else None
        self.status = server if isinstance(server, dict) else None


_EMPTY = ServerStatus.from_json({})
