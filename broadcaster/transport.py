"""Play, pause and skip a stream's player, through snapserver.

A stream whose ``source`` line carries the controlscript (now playing, see
docs/now-playing.md) has *properties* in snapserver's status: the player's
``playbackStatus``, ``can*`` flags, position and metadata.  Every surface
(the HTTP API, the CLI, the page) sends its commands the way the Snapcast
apps do, as snapserver's ``Stream.Control``, so all of them see one state:
snapserver forwards the command to the controlscript, which calls the app's
MPRIS player, which signals its new state back the same way.

A stream's player is a :class:`~broadcaster.mpris.NowPlaying` read back
from those properties (:func:`from_properties`); :func:`to_json` is its
shape in the API.  :func:`prepare` checks a
command against what the player allows (a
:class:`~broadcaster.errors.PlayerCannotError`, HTTP 409, names what it
cannot do) before :func:`send` sends it.
:class:`PlayerClock` remembers when each stream's properties last changed,
so a position read minutes ago can be told as it is now.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import ConfigError, PlayerCannotError
from .mpris import MAX_MICROSECONDS, NowPlaying, _num, capabilities

if TYPE_CHECKING:
    from .control import SnapControl
    from .rooms import StreamInfo


@dataclass(frozen=True)
class Command:
    """One transport command: its snapcast name and the capability it needs."""

    snapcast: str
    needs: str
    """The :class:`~broadcaster.mpris.NowPlaying` ``can_*`` attribute it needs."""
    doing: str
    """What the player cannot do, for the error message."""


#: The commands of every surface (API ``command``, CLI sub-command).
COMMANDS: dict[str, Command] = {
    "play": Command("play", "can_play", "play"),
    "pause": Command("pause", "can_pause", "pause"),
    "toggle": Command("playPause", "can_pause", "play/pause"),
    "stop": Command("stop", "can_control", "stop"),
    "next": Command("next", "can_go_next", "skip to the next track"),
    "previous": Command("previous", "can_go_previous", "go back to the previous track"),
    "seek": Command("seek", "can_seek", "seek"),
    "position": Command("setPosition", "can_seek", "seek"),
}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def from_properties(props: dict[str, Any], elapsed: float = 0.0, player: str = "") -> NowPlaying:
    """A stream's snapserver ``properties`` (as the controlscript reported them)
    read back as a :class:`~broadcaster.mpris.NowPlaying`; a playing position is
    moved on by ``elapsed`` seconds."""
    meta = props.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    artist = meta.get("artist")
    artists = (
        tuple(a for a in artist if isinstance(a, str) and a)
        if isinstance(artist, list)
        else ((artist,) if isinstance(artist, str) and artist else ())
    )
    status = _text(props.get("playbackStatus")) or "stopped"
    duration = _num(meta.get("duration"))
    position = _num(props.get("position"))
    rate = _num(props.get("rate"))
    if position is not None and status == "playing":
        position += max(0.0, elapsed) * (rate or 1.0)
        if duration:
            position = min(position, duration)
    return NowPlaying(
        player=player,
        status=status,
        title=_text(meta.get("title")),
        artist=artists,
        album=_text(meta.get("album")),
        art_url=_text(meta.get("artUrl")),
        duration=duration if duration else None,
        position=round(position, 3) if position is not None else None,
        rate=rate,
        **capabilities(props, "can"),
    )


def allows(player: NowPlaying, command: str) -> bool:
    """Whether the player allows ``command`` (a :data:`COMMANDS` key) now."""
    if not player.can_control:
        return False
    if command == "toggle":
        return player.can_pause if player.status == "playing" else player.can_play
    return bool(getattr(player, COMMANDS[command].needs))


def to_json(player: NowPlaying, stream_id: str) -> dict[str, Any]:
    """The ``player`` object of a stream in the HTTP API (docs/api.md)."""
    art_url = player.art_url or ""
    return {
        "status": player.status,
        "title": player.title or "",
        "artist": list(player.artist),
        "album": player.album or "",
        "art": art_link(stream_id, art_url),
        "art_url": art_url,
        "duration": player.duration,
        "position": player.position,
        "can": {name: allows(player, name) for name in COMMANDS},
    }


def art_link(stream_id: str, art_url: str) -> str | None:
    """Where a page gets the cover: an http(s) URL as it is (the browser fetches
    it, broadcaster never does); a ``file://`` one through broadcaster's own
    ``/api/streams/{id}/art`` (``v`` changes with the URL, for caches)."""
    if art_url.startswith(("https://", "http://")):
        return art_url
    if art_url.startswith("file://"):
        version = hashlib.sha256(art_url.encode()).hexdigest()[:12]
        return f"/api/streams/{quote(stream_id, safe='')}/art?v={version}"
    return None


def plan(
    stream: StreamInfo, player: NowPlaying, command: str, value: float | None = None
) -> dict[str, Any]:
    """The ``Stream.Control`` params for ``command``, or why not.

    ``value`` is the offset in seconds for ``seek``, the position for ``position``.
    """
    spec = COMMANDS.get(command)
    if spec is None:
        raise ConfigError(f"unknown command {command!r} (known: {', '.join(COMMANDS)})")
    if not player.can_control:
        if "controlscript" not in stream.query:
            # snapserver's own default stream, or a source line written by hand.
            raise PlayerCannotError(
                f"stream {stream.id!r} has no player to control: its snapserver source "
                "has no controlscript (the snapserver broadcaster runs has one; "
                "see docs/now-playing.md)"
            )
        raise PlayerCannotError(
            f"stream {stream.id!r} has no player to control: nothing with an MPRIS "
            "player is captured into it (see docs/now-playing.md)"
        )
    if not allows(player, command):
        raise PlayerCannotError(f"the player of stream {stream.id!r} cannot {spec.doing} now")
    params: dict[str, Any] = {"id": stream.id, "command": spec.snapcast}
    if command in ("seek", "position"):
        if value is None:
            raise ConfigError(f"{command} needs a number of seconds")
        if not math.isfinite(value) or abs(value) * 1e6 >= MAX_MICROSECONDS:
            # json.dumps would send NaN/Infinity, which snapserver cannot parse.
            raise ConfigError(f"{command} needs a finite number of seconds, not {value!r}")
        key = "offset" if command == "seek" else "position"
        params["params"] = {key: value}
    return params


def prepare(
    stream: StreamInfo, command: str, value: float | None = None, *, elapsed: float = 0.0
) -> tuple[NowPlaying, dict[str, Any]]:
    """The stream's player now and the checked ``Stream.Control`` params (see :func:`plan`)."""
    player = from_properties(stream.properties, elapsed, stream.id)
    return player, plan(stream, player, command, value)


async def send(control: SnapControl, params: dict[str, Any]) -> None:
    """Send :func:`prepare`'s params: snapserver hands them to the controlscript."""
    await control.call("Stream.Control", params)


class PlayerClock:
    """When each stream's properties last changed (a monotonic clock).

    The controlscript reads the position whenever it reports a change, and
    snapserver relays the report at once; so the position is the position
    at the moment the properties changed, and :meth:`elapsed` tells how far
    a playing track has moved on since.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[dict[str, Any], float]] = {}

    def update(self, status: dict[str, Any] | None) -> None:
        """Note a fresh ``Server.GetStatus`` server object."""
        now = self._clock()
        seen: dict[str, tuple[dict[str, Any], float]] = {}
        for stream in (status or {}).get("streams") or []:
            if not isinstance(stream, dict):
                continue
            key = str(stream.get("id", ""))
            props = stream.get("properties")
            props = props if isinstance(props, dict) else {}
            old = self._seen.get(key)
            seen[key] = old if old is not None and old[0] == props else (props, now)
        self._seen = seen

    def elapsed(self, stream_id: str) -> float:
        found = self._seen.get(stream_id)
        return self._clock() - found[1] if found is not None else 0.0

    def player(self, stream_id: str, props: dict[str, Any]) -> NowPlaying:
        return from_properties(props, self.elapsed(stream_id), stream_id)
