"""An announcement in chosen rooms only: they leave their group for it and come back.

The music's stream is shared by every room of a group (and often by every
room), so an announcement for some rooms cannot be mixed into it.  It plays
on a stream of its own instead, :data:`ANNOUNCE_STREAM` (a pipe source the
snapserver ``broadcaster run`` starts has; a snapserver 0.27+ gets it with
``Stream.AddStream``): the chosen rooms leave their groups, their new groups
play that stream, the announcement is written into its fifo, and the scene
taken before (:mod:`broadcaster.scenes`) is put back: grouping, stream,
group mute and name, each room's volume and mute.  The other rooms keep the
music, undisturbed and not ducked.  A room volume the user changes meanwhile
is kept.  Whatever fails on the way, the rooms are put back; if snapserver
itself is gone, the scene is saved under :data:`RESCUE_SCENE` to be restored
by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import house
from .announce import AnnounceQueue, AnnounceResult, prepare_pcm, speak
from .config import Config, is_local_host
from .control import SnapControl
from .errors import AnnounceError, BroadcasterError, ControlError, ServerReplyError
from .files import scratch_dir
from .paths import runtime_dir, scenes_file
from .rooms import Room, ServerStatus, StreamInfo
from .scenes import Scene, SceneStore, restore
from .settings import parse_address
from .snapserver import ANNOUNCE_FIFO, ANNOUNCE_STREAM
from .sndfile import read_sound

_LOGGER = logging.getLogger(__name__)

RESCUE_SCENE = "before-announcement"

PLAYOUT_S = 1.5
"""How long after the last byte is written the rooms may still be playing it
(snapserver's buffer, 1 s by default, and the pipe)."""


def scene_of(status: ServerStatus, rooms: Sequence[Room]) -> Scene:
    """The part of the server's state the chosen rooms' groups make up.

    In each group the rooms that stay come first: :func:`~broadcaster.scenes.restore`
    rebuilds a group around its first room, so the chosen rooms are put back
    into the group the others never left, which keeps playing undisturbed.
    """
    whole = Scene.capture(RESCUE_SCENE, status)
    wanted = {r.id for r in rooms}
    return dataclasses.replace(
        whole,
        groups=tuple(
            dataclasses.replace(g, rooms=tuple(sorted(g.rooms, key=lambda r: r.id in wanted)))
            for g in whole.groups
            if wanted & {r.id for r in g.rooms}
        ),
    )


def keep_user_volumes(scene: Scene, now: ServerStatus, before: ServerStatus) -> Scene:
    """``scene`` with the room volumes and mutes the user changed meanwhile taken as they are."""
    was = {r.id: r for r in before.rooms}
    is_ = {r.id: r for r in now.rooms}
    groups = []
    for group in scene.groups:
        rooms = []
        for room in group.rooms:
            old, new = was.get(room.id), is_.get(room.id)
            if (
                old is not None
                and new is not None
                and (new.volume, new.muted)
                != (
                    old.volume,
                    old.muted,
                )
            ):
                room = dataclasses.replace(room, volume=new.volume, muted=new.muted)
            rooms.append(room)
        groups.append(dataclasses.replace(group, rooms=tuple(rooms)))
    return dataclasses.replace(scene, groups=tuple(groups))


async def _announce_stream(
    snap: SnapControl, status: ServerStatus, env: Mapping[str, str]
) -> tuple[StreamInfo, bool]:
    """The stream to play on, and whether it was added for this announcement.

    :data:`ANNOUNCE_STREAM` if the server has it; else one added with
    ``Stream.AddStream`` (snapserver 0.27+); else an idle pipe stream (a free
    capture slot of ``broadcaster serve``).
    """
    for stream in status.streams:
        if stream.id == ANNOUNCE_STREAM and stream.scheme == "pipe":
            return stream, False
    fifo = runtime_dir(env) / ANNOUNCE_FIFO
    uri = f"pipe://{fifo}?name={ANNOUNCE_STREAM}&mode=create&sampleformat=48000:16:2&codec=pcm"
    try:
        await snap.call("Stream.AddStream", {"streamUri": uri})
    except ServerReplyError as err:
        _LOGGER.debug("snapserver cannot add a stream: %s", err)
    else:
        for stream in (await snap.status()).streams:
            if stream.id == ANNOUNCE_STREAM:
                return stream, True
    for stream in status.streams:
        if (
            stream.scheme == "pipe"
            and stream.status == "idle"
            and stream.format
            in (
                "",
                "48000:16:2",
            )
        ):
            _LOGGER.info("announcing on the idle stream %s", stream.id)
            return stream, False
    raise AnnounceError(
        f"snapserver has no stream {ANNOUNCE_STREAM} for announcements in chosen rooms, "
        f"no idle pipe stream, and cannot add one (0.27+ can); add `source = {uri}` "
        "to its configuration"
    )


STALL_S = 3.0
"""How long snapserver may read nothing of the announcement before it is given up."""


def _write_fifo(path: str, pcm: bytes, stall: float = STALL_S) -> None:
    """Write ``pcm`` into snapserver's fifo as fast as it reads (a thread's job)."""
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            raise AnnounceError(f"{path} is not a fifo")
        # Read-write: never blocks on open, whether snapserver reads yet or not;
        # non-blocking: a snapserver that stops reading cannot hang us.
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise AnnounceError(
            f"cannot open the announcement stream's pipe {path}: {err.strerror}"
        ) from None
    try:
        view = memoryview(pcm)
        progress = time.monotonic()
        while view:
            try:
                written = os.write(fd, view[: 48000 * 4 // 10])
            except BlockingIOError:
                if time.monotonic() - progress > stall:
                    raise AnnounceError(
                        "snapserver stopped reading the announcement stream"
                    ) from None
                time.sleep(0.01)
                continue
            view = view[written:]
            progress = time.monotonic()
    finally:
        os.close(fd)


async def announce_in_rooms(
    config: Config,
    names: Sequence[str],
    *,
    sound_file: str | os.PathLike[str] | None = None,
    text: str = "",
    env: Mapping[str, str] | None = None,
    queue: AnnounceQueue | None = None,
) -> AnnounceResult:
    """Play the announcement in the rooms ``names`` only; put them back after."""
    env = os.environ if env is None else env
    cfg = config.announce
    with scratch_dir("broadcaster-announce") as tmp:
        source = tmp / "speech.wav"
        if sound_file is None:
            await speak(text, source, voice=cfg.voice)
        else:
            source = Path(sound_file)
        sound = read_sound(source, max_seconds=cfg.max_seconds)
    pcm = prepare_pcm(sound, lead_ms=cfg.lead_ms)
    seconds = len(pcm) / (48000 * 4)
    host, port = parse_address(config.server or "127.0.0.1", config.snapserver.control_port)
    queue = queue or AnnounceQueue.default(env)
    async with SnapControl(host, port, timeout=config.timeout) as snap:
        before = await snap.status()
        rooms = [before.room(name) for name in names]
        stream, added = await _announce_stream(snap, before, env)
        if not is_local_host(host):
            raise AnnounceError(
                f"snapserver at {host} runs on another machine: its announcement stream's "
                "pipe cannot be written from here"
            )
        async with queue.turn() as waited:
            before = await snap.status()
            scene = scene_of(before, rooms)
            try:
                await _move(snap, rooms, stream.id)
                await asyncio.to_thread(_write_fifo, stream.path, pcm)
                await asyncio.sleep(PLAYOUT_S)
            finally:
                try:
                    await _put_back(snap, scene, before, env)
                finally:
                    if added:
                        with contextlib.suppress(ControlError):
                            await snap.call("Stream.RemoveStream", {"id": stream.id})
    return AnnounceResult((), seconds, waited, tuple(r.name for r in rooms))


async def _move(snap: SnapControl, rooms: Sequence[Room], stream_id: str) -> None:
    """Each room out of its group, its own group on ``stream_id``."""
    for room in rooms:
        await house.leave(snap, room, await snap.status())
    status = await snap.status()
    for room in rooms:
        group = status.group_of(status.room(room.id))
        if group.stream_id != stream_id:
            await snap.set_group_stream(group.id, stream_id)
            status = await snap.status()
    _LOGGER.info("announcing in %s", ", ".join(r.name for r in rooms))


async def _put_back(
    snap: SnapControl, scene: Scene, before: ServerStatus, env: Mapping[str, str]
) -> None:
    try:
        scene = keep_user_volumes(scene, await snap.status(), before)
        await restore(snap, scene)
    except (ControlError, OSError) as err:
        with contextlib.suppress(BroadcasterError, OSError):
            SceneStore(scenes_file(env)).save(scene)
        raise ControlError(
            f"could not put the rooms back after the announcement ({err}); their grouping "
            f"is saved: broadcaster scene restore {RESCUE_SCENE}"
        ) from None
