"""Scenes: a saved grouping of rooms, their groups' streams and their volumes.

A scene is taken from a :class:`~broadcaster.rooms.ServerStatus`
(:meth:`Scene.capture`) and put back with :func:`restore`.  Scenes live in
one JSON file, ``$XDG_STATE_HOME/broadcaster/scenes.json``
(``~/.local/state/...``), written atomically (temporary file, fsync,
``os.replace``), so a crash never leaves half a file.  Rooms are stored by id
(snapclient's host id, stable across restarts); a room the server no longer
knows is skipped on restore and reported, as is a stream it no longer has.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BadNameError, ConfigError, NotFoundError
from .files import write_atomic
from .paths import scenes_file
from .rooms import LATENCY_MAX_MS, LATENCY_MIN_MS

if TYPE_CHECKING:
    from .control import SnapControl
    from .rooms import ServerStatus

_LOGGER = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SceneRoom:
    id: str
    name: str
    volume: int
    muted: bool
    latency: int


@dataclass(frozen=True)
class SceneGroup:
    name: str
    stream_id: str
    muted: bool
    rooms: tuple[SceneRoom, ...]


SCENE_NAME_MAX = 80


def scene_name(name: str) -> str:
    """``name`` without surrounding spaces, if it can name a scene everywhere (the
    CLI, the API's ``/api/scenes/{scene}``, the page): 1 to 80 printable
    characters (any language, emoji too), no '/'; else :class:`BadNameError`."""
    name = name.strip()
    if not name or len(name) > SCENE_NAME_MAX or "/" in name or not name.isprintable():
        raise BadNameError(
            f"a scene name is 1 to {SCENE_NAME_MAX} printable characters without '/', "
            f"not {name[:SCENE_NAME_MAX]!r}"
        )
    return name


@dataclass(frozen=True)
class Scene:
    name: str
    saved_at: str
    groups: tuple[SceneGroup, ...]

    @classmethod
    def capture(cls, name: str, status: ServerStatus) -> Scene:
        """The scene ``name`` (checked by :func:`scene_name`) of what ``status`` shows."""
        return cls(
            name=scene_name(name),
            saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
            groups=tuple(
                SceneGroup(
                    name=g.name,
                    stream_id=g.stream_id,
                    muted=g.muted,
                    rooms=tuple(
                        SceneRoom(r.id, r.name, r.volume, r.muted, r.latency) for r in g.rooms
                    ),
                )
                for g in status.groups
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scene:
        return cls(
            name=str(data["name"]),
            saved_at=str(data.get("saved_at", "")),
            groups=tuple(
                SceneGroup(
                    name=str(g.get("name", "")),
                    stream_id=str(g["stream_id"]),
                    muted=_bool(g.get("muted", False), "muted"),
                    rooms=tuple(
                        SceneRoom(
                            str(r["id"]),
                            str(r.get("name", "")),
                            _int(r["volume"], "volume", 0, 100),
                            _bool(r.get("muted", False), "muted"),
                            _int(r.get("latency", 0), "latency", LATENCY_MIN_MS, LATENCY_MAX_MS),
                        )
                        for r in g["rooms"]
                    ),
                )
                for g in data["groups"]
            ),
        )


def _bool(value: Any, key: str) -> bool:
    """A stored flag as it was saved: ``bool("false")`` would be true."""
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _int(value: Any, key: str, low: int, high: int) -> int:
    """A stored number in the range snapserver takes (it would clamp, not refuse)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}, not {value!r}")
    return value


def _what_is_wrong(err: Exception) -> str:
    """What a reader of the file can look for, not Python's words for it."""
    if isinstance(err, KeyError):
        return f"it has no {err.args[0]!r}"
    if isinstance(err, (TypeError, AttributeError)):
        return "a value of the wrong kind where scenes, groups or rooms should be"
    return str(err)  # json's own (line and column) or a value out of range


class SceneStore:
    """The scenes file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or scenes_file()

    def load(self) -> dict[str, Scene]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise ConfigError(f"cannot read scenes from {self.path}: {err.strerror}") from None
        try:
            data = json.loads(text)
            return {name: Scene.from_json(s) for name, s in data["scenes"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ConfigError(
                f"{self.path} is not a scenes file ({_what_is_wrong(err)}); "
                "move it away to start afresh"
            ) from None

    def get(self, name: str) -> Scene:
        scenes = self.load()
        if name not in scenes:
            known = ", ".join(repr(n) for n in sorted(scenes)) or "none"
            raise NotFoundError(f"no scene {name!r} (saved: {known})")
        return scenes[name]

    def save(self, scene: Scene) -> None:
        with self._locked():
            scenes = self.load()
            scenes[scene.name] = scene
            self._write(scenes)

    def delete(self, name: str) -> None:
        with self._locked():
            scenes = self.load()
            if scenes.pop(name, None) is None:
                raise NotFoundError(f"no scene {name!r}")
            self._write(scenes)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock of the scenes file's directory for one read-modify-write.

        The service and a CLI may save at the same moment; without the lock
        one of the two scenes would be lost.  The directory, not the file, is
        locked: the file is replaced by every write, and a lock file would be
        litter.  ``flock`` is released when the process dies, so a crash never
        leaves it held.
        """
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise ConfigError(f"cannot lock {folder}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for milliseconds: one small file write
            yield
        finally:
            os.close(fd)

    def _write(self, scenes: Mapping[str, Scene]) -> None:
        data = {"version": FORMAT_VERSION, "scenes": {n: s.to_json() for n, s in scenes.items()}}
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        try:
            write_atomic(self.path, text)
        except OSError as err:
            raise ConfigError(f"cannot write scenes to {self.path}: {err.strerror}") from None


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` could not put back: the ids of rooms and the streams
    the server no longer knows (such a group keeps the stream it plays)."""

    missing_rooms: tuple[str, ...] = ()
    missing_streams: tuple[str, ...] = ()


async def restore(snap: SnapControl, scene: Scene) -> Restored:
    """Put ``scene`` back on the server, all but what it no longer knows."""
    missing: list[str] = []
    gone: list[str] = []
    for saved in scene.groups:
        status = await snap.status()
        known = {r.id: r for r in status.rooms}
        present = [r for r in saved.rooms if r.id in known]
        missing += [r.id for r in saved.rooms if r.id not in known]
        if not present:
            continue
        group = status.group_of(known[present[0].id])
        ids = [r.id for r in present]
        if sorted(r.id for r in group.rooms) != sorted(ids):
            await snap.set_group_rooms(group.id, ids)
            group = (await snap.status()).group_of(known[present[0].id])
        if group.stream_id != saved.stream_id:
            if any(s.id == saved.stream_id for s in status.streams):
                await snap.set_group_stream(group.id, saved.stream_id)
            elif saved.stream_id not in gone:
                gone.append(saved.stream_id)
        if group.muted != saved.muted:
            await snap.set_group_mute(group.id, saved.muted)
        if saved.name and group.name != saved.name:
            await snap.set_group_name(group.id, saved.name)
        for room in present:
            now = known[room.id]
            if (now.volume, now.muted) != (room.volume, room.muted):
                await snap.set_room_volume(room.id, room.volume, muted=room.muted)
            if now.latency != room.latency:
                await snap.set_room_latency(room.id, room.latency)
    if missing:
        _LOGGER.warning("scene %s: rooms no longer known: %s", scene.name, ", ".join(missing))
    if gone:
        _LOGGER.warning("scene %s: streams no longer known: %s", scene.name, ", ".join(gone))
    return Restored(tuple(missing), tuple(gone))
