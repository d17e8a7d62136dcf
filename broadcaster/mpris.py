"""Now playing and transport control of the captured app, over MPRIS (D-Bus).

A media app (Spotify, a browser, mpv...) publishes its track and transport as
an MPRIS player: a name ``org.mpris.MediaPlayer2.<app>[.instanceN]`` on the
session bus with the object ``/org/mpris/MediaPlayer2``.  This module finds
the player of the app broadcaster captures, by that name and/or by the
process id that owns the name (``GetConnectionUnixProcessID``), reads what it
is playing as a :class:`NowPlaying`, sends it play/pause/next/..., and
:class:`PlayerFollower` follows it as it appears, changes, disappears and
restarts.

:func:`now_playing` is the one-shot call for status output and the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import MprisError
from .lifecycle import cancel_and_wait
from .nowplaying import BUS_PREFIX, PlayerMatch

if TYPE_CHECKING:
    from dbus_fast import Message
    from dbus_fast.aio import MessageBus

log = logging.getLogger(__name__)

OBJECT_PATH = "/org/mpris/MediaPlayer2"
ROOT_IFACE = "org.mpris.MediaPlayer2"
PLAYER_IFACE = "org.mpris.MediaPlayer2.Player"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"

#: MPRIS LoopStatus <-> snapcast loopStatus.
LOOP_TO_MPRIS = {"none": "None", "track": "Track", "playlist": "Playlist"}


@dataclass(frozen=True)
class NowPlaying:
    """What an MPRIS player is playing, and what it lets a remote do."""

    player: str
    identity: str = ""
    status: str = "stopped"  # playing | paused | stopped
    title: str | None = None
    artist: tuple[str, ...] = ()
    album: str | None = None
    album_artist: tuple[str, ...] = ()
    art_url: str | None = None
    url: str | None = None
    track_id: str | None = None
    duration: float | None = None  # seconds
    position: float | None = None  # seconds
    volume: float | None = None  # 0.0 .. 1.0
    shuffle: bool | None = None
    loop: str | None = None  # none | track | playlist
    rate: float | None = None
    can_play: bool = False
    can_pause: bool = False
    can_go_next: bool = False
    can_go_previous: bool = False
    can_seek: bool = False
    can_control: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


CAPABILITIES = ("play", "pause", "go_next", "go_previous", "seek", "control")
"""What a player may let a remote do: :class:`NowPlaying`'s ``can_*`` flags, MPRIS's
``CanPlay`` ... properties, snapcast's ``canPlay`` ... stream properties."""


def capability_key(capability: str, prefix: str) -> str:
    """A capability's property name: ``go_next`` -> ``CanGoNext`` (prefix ``Can``, MPRIS)
    or ``canGoNext`` (prefix ``can``, snapcast)."""
    return prefix + "".join(part.title() for part in capability.split("_"))


def capabilities(props: dict[str, Any], prefix: str) -> dict[str, Any]:
    """:class:`NowPlaying`'s ``can_*`` arguments from a player's properties named with
    ``prefix`` (:func:`capability_key`); a flag is on only if it is exactly true."""
    return {f"can_{c}": props.get(capability_key(c, prefix)) is True for c in CAPABILITIES}


def _plain(value: Any) -> Any:
    """Unwrap dbus-fast Variants (recursively)."""
    from dbus_fast import Variant

    if isinstance(value, Variant):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def _num(value: Any) -> float | None:
    """A finite number, else None (NaN and infinities are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return None
    return number if math.isfinite(number) else None


MAX_MICROSECONDS = 2**63 - 1
"""MPRIS positions are signed 64-bit microseconds."""


def _micros(value: Any) -> int | None:
    """Seconds as MPRIS microseconds, or None if not a number that fits."""
    seconds = _num(value)
    if seconds is None or abs(seconds) * 1e6 >= MAX_MICROSECONDS:
        return None
    return round(seconds * 1e6)


def parse_player(player: str, identity: str, props: dict[str, Any]) -> NowPlaying:
    """A :class:`NowPlaying` from the player interface's properties (plain values)."""
    meta = props.get("Metadata")
    meta = meta if isinstance(meta, dict) else {}
    length = _num(meta.get("mpris:length"))
    position = _num(props.get("Position"))
    loop = props.get("LoopStatus")
    status = props.get("PlaybackStatus")
    return NowPlaying(
        player=player,
        identity=identity,
        status=status.lower() if status in ("Playing", "Paused", "Stopped") else "stopped",
        title=_str(meta.get("xesam:title")),
        artist=_strs(meta.get("xesam:artist")),
        album=_str(meta.get("xesam:album")),
        album_artist=_strs(meta.get("xesam:albumArtist")),
        art_url=_str(meta.get("mpris:artUrl")),
        url=_str(meta.get("xesam:url")),
        track_id=_str(meta.get("mpris:trackid")),
        duration=length / 1e6 if length is not None and length > 0 else None,
        position=position / 1e6 if position is not None and position >= 0 else None,
        volume=_num(props.get("Volume")),
        shuffle=props["Shuffle"] if isinstance(props.get("Shuffle"), bool) else None,
        loop=loop.lower() if loop in ("None", "Track", "Playlist") else None,
        rate=_num(props.get("Rate")),
        extra=meta,
        **capabilities(props, "Can"),
    )


async def connect(bus_address: str | None = None, timeout: float = 2.0) -> MessageBus:
    """The session bus (``DBUS_SESSION_BUS_ADDRESS`` unless ``bus_address``)."""
    from dbus_fast.aio import MessageBus

    try:
        async with asyncio.timeout(timeout):
            return await MessageBus(bus_address=bus_address).connect()
    except Exception as err:  # dbus-fast raises OSError, AuthError, ValueError...
        raise MprisError(
            f"cannot reach the D-Bus session bus ({err}); is DBUS_SESSION_BUS_ADDRESS set?"
        ) from None


async def _call(
    bus: MessageBus,
    destination: str,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
    timeout: float = 2.0,
) -> list[Any]:
    from dbus_fast import Message, MessageType

    message = Message(
        destination=destination,
        path=path,
        interface=interface,
        member=member,
        signature=signature,
        body=body or [],
    )
    try:
        async with asyncio.timeout(timeout):
            reply = await bus.call(message)
    except TimeoutError:
        raise MprisError(f"{destination} did not answer {member} within {timeout:.0f} s") from None
    except Exception as err:  # dbus-fast raises plain Exceptions once the bus is gone
        raise MprisError(f"D-Bus call {member} to {destination} failed: {err}") from None
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        raise MprisError(f"{destination} refused {member}: {reply.error_name} {reply.body}")
    return list(reply.body)


async def list_players(bus: MessageBus, timeout: float = 2.0) -> list[str]:
    """Bus names of every MPRIS player on the bus, sorted."""
    (names,) = await _call(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, "ListNames", timeout=timeout)
    return sorted(n for n in names if n.startswith(BUS_PREFIX))


async def owner_pid(bus: MessageBus, name: str, timeout: float = 2.0) -> int | None:
    try:
        (pid,) = await _call(
            bus,
            DBUS_NAME,
            DBUS_PATH,
            DBUS_NAME,
            "GetConnectionUnixProcessID",
            "s",
            [name],
            timeout=timeout,
        )
    except MprisError:
        return None
    return int(pid)


async def _get_all(bus: MessageBus, name: str, iface: str, timeout: float) -> dict[str, Any]:
    (props,) = await _call(
        bus, name, OBJECT_PATH, PROPS_IFACE, "GetAll", "s", [iface], timeout=timeout
    )
    return dict(_plain(props))


async def find_player(bus: MessageBus, match: PlayerMatch, timeout: float = 2.0) -> str | None:
    """The bus name of the captured app's player, or None if it has none."""
    players = await list_players(bus, timeout)
    for name in players:
        if match.name_matches(name):
            return name
    for name in players:
        if match.pid is not None and match.pid_matches(await owner_pid(bus, name, timeout)):
            return name
    if match.app:
        for name in players:
            with contextlib.suppress(MprisError):
                root = await _get_all(bus, name, ROOT_IFACE, timeout)
                if match.name_matches(name, str(root.get("Identity", ""))):
                    return name
    return None


async def read_player(bus: MessageBus, name: str, timeout: float = 2.0) -> NowPlaying:
    """What the player ``name`` plays right now."""
    props = await _get_all(bus, name, PLAYER_IFACE, timeout)
    identity = ""
    with contextlib.suppress(MprisError):
        root = await _get_all(bus, name, ROOT_IFACE, timeout)
        identity = str(root.get("Identity", ""))
    return parse_player(name, identity, props)


#: snapcast Plugin.Stream.Player.Control commands without parameters -> MPRIS methods.
SIMPLE_COMMANDS = {
    "play": "Play",
    "pause": "Pause",
    "playPause": "PlayPause",
    "stop": "Stop",
    "next": "Next",
    "previous": "Previous",
}


async def control(
    bus: MessageBus,
    name: str,
    command: str,
    params: dict[str, Any] | None = None,
    timeout: float = 2.0,
) -> None:
    """Send a snapcast-style transport command to the player ``name``."""
    params = params or {}
    if command in SIMPLE_COMMANDS:
        await _call(bus, name, OBJECT_PATH, PLAYER_IFACE, SIMPLE_COMMANDS[command], timeout=timeout)
    elif command == "seek":
        offset = _micros(params.get("offset"))
        if offset is None:
            raise MprisError("seek needs a numeric 'offset' in seconds")
        await _call(
            bus,
            name,
            OBJECT_PATH,
            PLAYER_IFACE,
            "Seek",
            "x",
            [offset],
            timeout=timeout,
        )
    elif command == "setPosition":
        position = _micros(params.get("position"))
        if position is None:
            raise MprisError("setPosition needs a numeric 'position' in seconds")
        playing = await read_player(bus, name, timeout)
        if playing.track_id is None:
            raise MprisError(f"{name} names no track, so its position cannot be set")
        await _call(
            bus,
            name,
            OBJECT_PATH,
            PLAYER_IFACE,
            "SetPosition",
            "ox",
            [playing.track_id, position],
            timeout=timeout,
        )
    else:
        raise MprisError(f"unknown command {command!r}")


async def set_property(
    bus: MessageBus, name: str, prop: str, value: Any, timeout: float = 2.0
) -> None:
    """Set a snapcast-style player property (volume 0..100, shuffle, loopStatus, rate)."""
    from dbus_fast import Variant

    if prop == "volume" and _num(value) is not None:
        variant = Variant("d", max(0.0, min(100.0, float(value))) / 100.0)
        mpris = "Volume"
    elif prop == "shuffle" and isinstance(value, bool):
        variant, mpris = Variant("b", value), "Shuffle"
    elif prop == "loopStatus" and value in LOOP_TO_MPRIS:
        variant, mpris = Variant("s", LOOP_TO_MPRIS[value]), "LoopStatus"
    elif prop == "rate" and _num(value) is not None:
        variant, mpris = Variant("d", float(value)), "Rate"
    else:
        raise MprisError(f"cannot set {prop!r} to {value!r}")
    await _call(
        bus,
        name,
        OBJECT_PATH,
        PROPS_IFACE,
        "Set",
        "ssv",
        [PLAYER_IFACE, mpris, variant],
        timeout=timeout,
    )


async def now_playing(
    app: str | None = None,
    pid: int | None = None,
    *,
    bus_address: str | None = None,
    timeout: float = 2.0,
) -> NowPlaying | None:
    """What the app's MPRIS player plays, or None if it has no player.

    Raises :class:`MprisError` when the session bus cannot be reached.
    """
    match = PlayerMatch(app, pid)
    bus = await connect(bus_address, timeout)
    try:
        name = await find_player(bus, match, timeout)
        if name is None:
            return None
        try:
            return await read_player(bus, name, timeout)
        except MprisError:
            return None  # it left between the two calls
    finally:
        bus.disconnect()


OnChange = Callable[[NowPlaying | None], Awaitable[None]]


class PlayerFollower:
    """Follows the matching player: emits a :class:`NowPlaying` on every change.

    ``on_change`` gets None while the app has no player (not started yet,
    quit, restarting) or while ``match`` is None (no app captured).  Owns one
    task; ``start()``/``stop()``; :meth:`set_match` switches to another app.
    """

    def __init__(
        self,
        match: PlayerMatch | None,
        on_change: OnChange,
        *,
        bus_address: str | None = None,
        timeout: float = 2.0,
        rescan_s: float = 5.0,
    ) -> None:
        self.match = match
        self.on_change = on_change
        self.bus_address = bus_address
        self.timeout = timeout
        self.rescan_s = rescan_s
        self.bus: MessageBus | None = None
        self.player: str | None = None
        self.current: NowPlaying | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._emitted = False
        self._seeked = False
        self._last_error: str | None = None

    async def start(self) -> None:
        """Connect and follow; raises :class:`MprisError` if the bus is unreachable."""
        await self._connect()
        self._dirty.set()
        self._task = asyncio.create_task(self._run(), name="mpris-follower")

    async def _connect(self) -> None:
        bus = await connect(self.bus_address, self.timeout)
        try:
            for rule in (
                f"type='signal',sender='{DBUS_NAME}',interface='{DBUS_NAME}',"
                "member='NameOwnerChanged',arg0namespace='org.mpris.MediaPlayer2'",
                f"type='signal',interface='{PROPS_IFACE}',member='PropertiesChanged',"
                f"path='{OBJECT_PATH}'",
                f"type='signal',interface='{PLAYER_IFACE}',member='Seeked',path='{OBJECT_PATH}'",
            ):
                await _call(
                    bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, "AddMatch", "s", [rule], self.timeout
                )
        except MprisError:
            bus.disconnect()
            raise
        bus.add_message_handler(self._on_message)
        self.bus = bus

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None

    def set_match(self, match: PlayerMatch | None) -> None:
        """Follow another app's player from now on."""
        if match != self.match:
            log.info("mpris: following %s", match or "nothing")
            self.match = match
            self._dirty.set()

    def refresh(self) -> None:
        """Ask for a re-read (e.g. before answering GetProperties)."""
        self._dirty.set()

    def _on_message(self, message: Message) -> None:
        if message.member == "Seeked":
            self._seeked = True  # a jump in position is news; its steady advance is not
        if message.member in ("NameOwnerChanged", "PropertiesChanged", "Seeked"):
            self._dirty.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.rescan_s):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                if self.bus is None or not self.bus.connected:
                    await self._lost()
                    await self._connect()
                await self.poll()
                self._last_error = None
            except MprisError as err:
                if str(err) != self._last_error:  # once per change of state, not every rescan
                    log.warning("mpris: %s", err)
                    self._last_error = str(err)
                if self.bus is not None and not self.bus.connected:
                    await self._lost()

    async def _lost(self) -> None:
        """The session bus went away: no player until it is back."""
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None
        self.player = None
        if self.current is not None or not self._emitted:
            self.current = None
            self._emitted = True
            await self.on_change(None)

    async def poll(self) -> NowPlaying | None:
        """Find and read the player now; emit if anything changed."""
        if self.bus is None:
            return None  # not connected (yet, or the bus went away): _run reconnects
        found: NowPlaying | None = None
        name = None
        if self.match is not None:
            name = await find_player(self.bus, self.match, self.timeout)
        if name is not None:
            try:
                found = await read_player(self.bus, name, self.timeout)
            except MprisError:
                name = None
        if name != self.player:
            log.info("mpris player for %s: %s", self.match, name or "none")
        self.player = name
        changed = _without_position(found) != _without_position(self.current)
        self.current = found
        if changed or self._seeked or not self._emitted:
            self._emitted = True
            self._seeked = False
            await self.on_change(found)
        return found

    async def control(self, command: str, params: dict[str, Any] | None = None) -> None:
        bus, name = self._bus_and_player()
        await control(bus, name, command, params, self.timeout)
        self._dirty.set()

    async def set_property(self, prop: str, value: Any) -> None:
        bus, name = self._bus_and_player()
        await set_property(bus, name, prop, value, self.timeout)
        self._dirty.set()

    def _bus_and_player(self) -> tuple[MessageBus, str]:
        if self.bus is None or self.player is None:
            app = "the captured app"
            if self.match is not None:
                app = self.match.app or f"process {self.match.pid}"
            raise MprisError(f"{app} has no MPRIS player right now; start playing in the app")
        return self.bus, self.player


def _without_position(playing: NowPlaying | None) -> NowPlaying | None:
    """Position moves all the time without a signal: do not count it as a change."""
    if playing is None:
        return None
    from dataclasses import replace

    return replace(playing, position=None)
