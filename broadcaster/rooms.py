"""What a snapserver holds, as frozen values: rooms, groups, streams.

:class:`ServerStatus` is parsed from a ``Server.GetStatus`` reply by
:meth:`ServerStatus.from_json`; every part is a frozen dataclass, so the CLI,
the scenes and the HTTP service can hand them around freely.  A *room* is a
snapclient (Snapcast's "client"); a *group* plays one stream on its rooms.

Name resolution (:meth:`ServerStatus.room`, :meth:`ServerStatus.group`,
:meth:`ServerStatus.stream`) accepts an id, a name or (rooms) a host name,
exact first, then case-insensitively; an unknown name raises
:class:`~broadcaster.errors.NotFoundError` and an ambiguous one
:class:`~broadcaster.errors.AmbiguousNameError`, both listing the candidates.

:func:`group_volume` and :func:`scale_group_volume` do group volume the way
snapweb does it (see their docstrings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import AmbiguousNameError, BadNameError, NotFoundError, OutOfRangeError

T = TypeVar("T")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pick(item: object, names: str) -> dict[str, Any]:
    """``item``'s attributes ``names`` (space-separated) as JSON; ``x_id`` is named ``x``."""
    return {name.removesuffix("_id"): getattr(item, name) for name in names.split()}


@dataclass(frozen=True)
class StreamInfo:
    """A stream (audio source) configured on snapserver."""

    id: str
    status: str
    scheme: str
    path: str
    query: dict[str, str]
    properties: dict[str, Any] = field(default_factory=dict)
    """Stream properties (0.26+: playbackStatus, canControl, metadata...)."""
    uri: str = ""
    """The source URI as snapserver reports it (``uri.raw``)."""

    @property
    def name(self) -> str:
        return self.query.get("name") or self.id

    @property
    def codec(self) -> str:
        return self.query.get("codec", "")

    @property
    def format(self) -> str:
        """Sample format RATE:BITS:CHANNELS as configured (``sampleformat``)."""
        return self.query.get("sampleformat", "")

    @property
    def metadata(self) -> dict[str, Any]:
        return _dict(self.properties.get("metadata"))

    @property
    def title(self) -> str:
        """The title in the stream's metadata (set by its controlscript), or ""."""
        return str(self.metadata.get("title") or "")

    @property
    def artist(self) -> str:
        """The artists in the stream's metadata, comma-separated, or ""."""
        artists = self.metadata.get("artist")
        if isinstance(artists, list):
            artists = ", ".join(str(a) for a in artists)
        return str(artists or "")

    @property
    def now_playing(self) -> str:
        """ "Title — Artist" from the stream's metadata, or ""."""
        title, artist = self.title, self.artist
        return f"{title} — {artist}" if title and artist else title or artist

    @classmethod
    def from_status(cls, data: dict[str, Any]) -> StreamInfo:
        uri = _dict(data.get("uri"))
        query: Any = uri.get("query") or {}
        if not isinstance(query, dict):
            from urllib.parse import parse_qs  # rare (old servers), and costs start-up time

            query = {k: v[0] for k, v in parse_qs(str(query)).items()}
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            scheme=str(uri.get("scheme", "")),
            path=str(uri.get("path", "")),
            query={str(k): str(v) for k, v in query.items()},
            properties=_dict(data.get("properties")),
            uri=str(uri.get("raw", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return _pick(self, "id name status scheme path codec format properties")


NAME_MAX = 200
"""The longest room or group name broadcaster sets (the API's, the CLI's)."""


def new_name(text: str) -> str:
    """``text`` as the name to give a room or group (``broadcaster room|group
    rename``, ``PUT /api/rooms/{room}/name``): outer spaces dropped, 1 to
    :data:`NAME_MAX` characters, no control characters (snapserver keeps any
    string, and a NUL or a line break would reach every app that shows it);
    else :class:`BadNameError`.  Any language and emoji are fine."""
    import unicodedata

    name = text.strip()
    if not 0 < len(name) <= NAME_MAX or any(unicodedata.category(c) == "Cc" for c in name):
        raise BadNameError(
            f"a name is 1 to {NAME_MAX} characters without control characters, "
            f"not {name[:NAME_MAX]!r}"
        )
    return name


LATENCY_MIN_MS = -10000
"""The lowest latency snapserver keeps (0.26 and 0.31 raise anything lower to it)."""
LATENCY_MAX_MS = 10000
"""The highest latency broadcaster asks for.  snapserver lowers anything above
its stream buffer (``[stream] buffer``, 1000 ms by default) to the buffer."""


def check_latency(latency_ms: int) -> int:
    """``latency_ms`` if it is a latency to ask snapserver for; else :class:`OutOfRangeError`.

    A room plays ``latency`` ms earlier than the stream says, so a room behind
    the others gets a negative one (calibration does that).
    """
    if not LATENCY_MIN_MS <= latency_ms <= LATENCY_MAX_MS:
        raise OutOfRangeError(
            f"latency {latency_ms} ms is out of range: "
            f"snapserver takes {LATENCY_MIN_MS} to {LATENCY_MAX_MS} ms (at most its stream buffer)"
        )
    return latency_ms


@dataclass(frozen=True)
class Room:
    """A snapclient: a place where a group's stream plays."""

    id: str
    name: str
    """The configured name, else the host name (what snapweb shows)."""
    configured_name: str
    host: str
    ip: str
    connected: bool
    volume: int
    muted: bool
    latency: int
    group_id: str
    stream_id: str

    @classmethod
    def from_status(cls, data: dict[str, Any], group_id: str, stream_id: str) -> Room:
        config = _dict(data.get("config"))
        volume = _dict(config.get("volume"))
        host = _dict(data.get("host"))
        configured = str(config.get("name") or "")
        host_name = str(host.get("name") or "")
        return cls(
            id=str(data.get("id", "")),
            name=configured or host_name or str(data.get("id", "")),
            configured_name=configured,
            host=host_name,
            ip=str(host.get("ip") or ""),
            connected=bool(data.get("connected")),
            volume=int(volume.get("percent", 0)),
            muted=bool(volume.get("muted")),
            latency=int(config.get("latency", 0)),
            group_id=group_id,
            stream_id=stream_id,
        )

    def to_json(self) -> dict[str, Any]:
        return _pick(self, "id name host ip connected volume muted latency group_id stream_id")


@dataclass(frozen=True)
class Group:
    """Rooms that play one stream together."""

    id: str
    name: str
    muted: bool
    stream_id: str
    rooms: tuple[Room, ...]

    @property
    def label(self) -> str:
        """The name, else the names of its rooms (snapweb shows groups like that)."""
        return self.name or ", ".join(r.name for r in self.rooms) or self.id

    @property
    def volume(self) -> int:
        return group_volume(self.rooms)

    @classmethod
    def from_status(cls, data: dict[str, Any]) -> Group:
        gid = str(data.get("id", ""))
        stream_id = str(data.get("stream_id", ""))
        clients = data.get("clients") or []
        return cls(
            id=gid,
            name=str(data.get("name") or ""),
            muted=bool(data.get("muted")),
            stream_id=stream_id,
            rooms=tuple(
                Room.from_status(c, gid, stream_id) for c in clients if isinstance(c, dict)
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "muted": self.muted,
            "stream": self.stream_id,
            "volume": self.volume,
            "rooms": [r.id for r in self.rooms],
        }


@dataclass(frozen=True)
class ServerInfo:
    name: str
    version: str
    host: str
    protocol_version: int

    @classmethod
    def from_status(cls, data: dict[str, Any]) -> ServerInfo:
        snap = _dict(data.get("snapserver"))
        host = _dict(data.get("host"))
        return cls(
            name=str(snap.get("name") or "Snapserver"),
            version=str(snap.get("version") or ""),
            host=str(host.get("name") or ""),
            protocol_version=int(snap.get("controlProtocolVersion") or 0),
        )


@dataclass(frozen=True)
class ServerStatus:
    """One snapshot of a snapserver's state."""

    server: ServerInfo
    groups: tuple[Group, ...]
    streams: tuple[StreamInfo, ...]

    @classmethod
    def from_json(cls, result: dict[str, Any]) -> ServerStatus:
        """Parse the ``result`` of ``Server.GetStatus`` (``{"server": {...}}``)."""
        server = _dict(result.get("server"))
        return cls(
            server=ServerInfo.from_status(_dict(server.get("server"))),
            groups=tuple(Group.from_status(g) for g in server.get("groups") or [] if g),
            streams=tuple(StreamInfo.from_status(s) for s in server.get("streams") or [] if s),
        )

    @property
    def rooms(self) -> tuple[Room, ...]:
        return tuple(room for group in self.groups for room in group.rooms)

    def to_json(self) -> dict[str, Any]:
        return {
            "server": {
                "name": self.server.name,
                "version": self.server.version,
                "host": self.server.host,
            },
            "groups": [g.to_json() for g in self.groups],
            "rooms": [r.to_json() for r in self.rooms],
            "streams": [s.to_json() for s in self.streams],
        }

    def room(self, name: str) -> Room:
        """The room with this id, name or host name."""
        return resolve("room", name, self.rooms, lambda r: (r.id, r.name, r.host), lambda r: r.name)

    def group(self, name: str) -> Group:
        """The group with this id or name, or the group of the room with this name."""
        try:
            return resolve("group", name, self.groups, lambda g: (g.id, g.name), lambda g: g.label)
        except NotFoundError:
            try:
                room = self.room(name)
            except NotFoundError:
                raise NotFoundError(
                    f"no group or room {name!r} (groups: "
                    f"{_listing(g.label for g in self.groups)}; rooms: "
                    f"{_listing(r.name for r in self.rooms)})"
                ) from None
            return self.group_of(room)

    def group_of(self, room: Room) -> Group:
        for group in self.groups:
            if any(r.id == room.id for r in group.rooms):
                return group
        raise NotFoundError(f"room {room.name!r} is in no group")

    def stream(self, name: str) -> StreamInfo:
        return resolve("stream", name, self.streams, lambda s: (s.id, s.name), lambda s: s.id)


def _listing(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"


def resolve(
    kind: str,
    wanted: str,
    items: Sequence[T],
    keys: Callable[[T], tuple[str, ...]],
    label: Callable[[T], str],
) -> T:
    """The one item whose keys match ``wanted``: exactly, else ignoring case.

    An id (the first key) that matches wins over names.
    """
    for item in items:
        if keys(item)[0] == wanted:
            return item
    folded = wanted.casefold()
    for fold in (False, True):
        found = [
            i
            for i in items
            if any(k and (k.casefold() == folded if fold else k == wanted) for k in keys(i))
        ]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AmbiguousNameError(
                f"{kind} {wanted!r} is ambiguous: it matches "
                + ", ".join(f"{label(i)!r} (id {keys(i)[0]})" for i in found)
                + "; use the id"
            )
    known = ", ".join(
        repr(label(i)) if label(i) == keys(i)[0] else f"{label(i)!r} (id {keys(i)[0]})"
        for i in items
    )
    raise NotFoundError(f"no {kind} {wanted!r} (known: {known or 'none'})")


def group_volume(rooms: Iterable[Room]) -> int:
    """A group's volume as snapweb shows it: the mean of its connected rooms' volumes.

    Disconnected rooms are left out; a group with none connected averages all.
    """
    rooms = list(rooms)
    counted = [r for r in rooms if r.connected] or rooms
    if not counted:
        return 0
    return round(sum(r.volume for r in counted) / len(counted))


def scale_group_volume(rooms: Iterable[Room], target: int) -> dict[str, int]:
    """New room volumes (by room id) that bring the group to ``target``, like snapweb.

    snapweb moves every room by the same *proportion of its headroom*: going
    down from the group volume ``g`` to ``t``, each room loses the fraction
    ``(g - t) / g`` of its own volume; going up, each room gains the fraction
    ``(t - g) / (100 - g)`` of what it lacks to 100.  So relative differences
    between rooms survive, 0 mutes all and 100 sets all to 100.  Only connected
    rooms are changed (as they make up the group volume).  This is snapweb's
    ``Group.tsx`` ``handleVolumeChange`` with ``getGroupVolume`` over online
    clients; we round to whole percents (snapweb sends fractions).
    """
    target = max(0, min(100, target))
    rooms = list(rooms)
    counted = [r for r in rooms if r.connected] or rooms
    current = group_volume(counted)
    result: dict[str, int] = {}
    for room in counted:
        if target < current:
            ratio = (current - target) / current
            volume = room.volume - ratio * room.volume
        elif target > current:
            ratio = (target - current) / (100 - current)
            volume = room.volume + ratio * (100 - room.volume)
        else:
            volume = room.volume
        result[room.id] = max(0, min(100, round(volume)))
    return result
