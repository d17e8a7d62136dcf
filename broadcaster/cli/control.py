"""Room control commands: discover, status, room, group, party, scene, watch.

The parsers and one handler per command, thin over the library:
:mod:`broadcaster.control` (the connection), :mod:`broadcaster.rooms` (the
state and name resolution), :mod:`broadcaster.house` (operations over several
requests), :mod:`broadcaster.scenes` and :mod:`broadcaster.discovery`.  Which
server: :mod:`.lookup`; output: :mod:`.formatting`.  Every command takes
``--server``, ``--json`` and ``--timeout``.

A command connects once (which reads the status once) and makes its calls; a
room change prints the room as the accepted call left it, without reading the
status again.  ``status`` and ``scene save`` make one read: they are plain
functions over the blocking client (:func:`.lookup.read_status`), the others
``async``.  This module's own imports stay light (the library's modules are
imported inside the handlers), so that building the parser costs little.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import house
from . import lookup
from .formatting import (
    emit,
    format_event,
    format_status,
    group_line,
    room_line,
    safe_json,
    table,
)

if TYPE_CHECKING:
    from ..control import Event, SnapControl
    from ..rooms import Group, Room, ServerStatus


TARGET_HELP = {
    "room": "room name, host name or id",
    "group": "group name or id, or a room of the group",
}


def register(subparsers: Any) -> None:
    common = lookup.common_options()

    def add(sub: Any, name: str, help_: str, handler: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_, description=help_, parents=[common]
        )
        parser.set_defaults(handler=handler)
        return parser

    add(subparsers, "discover", "list the snapservers found with mDNS", _discover)
    add(subparsers, "status", "show groups, rooms and streams", _status)

    def on(sub: Any, target: str, name: str, help_: str, handler: Any) -> argparse.ArgumentParser:
        """A command acting on one room or group (the first argument)."""
        parser = add(sub, name, help_, handler)
        parser.add_argument(target, help=TARGET_HELP[target])
        return parser

    def mute(sub: Any, target: str, handler: Any) -> None:
        for action in ("mute", "unmute"):
            parser = on(sub, target, action, f"{action} a {target}", handler)
            parser.set_defaults(muted=action == "mute")

    room = subparsers.add_parser("room", help="change one room (a snapclient)")
    rooms = room.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = on(rooms, "room", "volume", "set a room's volume: 40, +5 or -5", _room_volume)
    p.add_argument("volume", type=_volume_arg, help="0-100, or +N / -N relative")
    mute(rooms, "room", _room_mute)
    p = on(rooms, "room", "latency", "set a room's extra latency in ms", _room_latency)
    p.add_argument("latency", type=int, help="milliseconds")
    p = on(rooms, "room", "rename", "rename a room", _room_rename)
    p.add_argument("name", help="the new name")
    on(
        rooms,
        "room",
        "delete",
        "forget a room (it comes back if its snapclient connects)",
        _room_del,
    )

    group = subparsers.add_parser("group", help="change a group of rooms")
    groups = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = on(groups, "group", "join", "move rooms into a group", _group_join)
    p.add_argument("rooms", nargs="+", help="rooms to move into it")
    on(groups, "room", "leave", "take a room out of its group", _group_leave)
    p = on(groups, "group", "stream", "set the stream a group plays", _group_stream)
    p.add_argument("stream", help="stream name or id")
    mute(groups, "group", _group_mute)
    p = on(groups, "group", "rename", "rename a group", _group_rename)
    p.add_argument("name", help="the new name")
    text = "set a group's volume, scaling its rooms like snapweb"
    p = on(groups, "group", "volume", text, _group_volume)
    p.add_argument("volume", type=_volume_arg, help="0-100, or +N / -N relative")

    p = add(subparsers, "party", "all rooms into one group on one stream", _party)
    p.add_argument("stream", nargs="?", help="stream name or id (default: the first stream)")

    scene = subparsers.add_parser("scene", help="save and restore groupings, streams, volumes")
    scenes = scene.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add(scenes, "save", "save the current state under a name", _scene_save)
    p.add_argument("name")
    p = add(scenes, "restore", "restore a saved scene", _scene_restore)
    p.add_argument("name")
    add(scenes, "list", "list saved scenes", _scene_list)
    p = add(scenes, "delete", "delete a saved scene", _scene_delete)
    p.add_argument("name")

    p = add(subparsers, "watch", "print server notifications live, one line each", _watch)
    p.add_argument("--count", type=_count_arg, metavar="N", help="exit after N notifications")


def _volume_arg(text: str) -> tuple[str, int]:
    """``40`` -> ("=", 40); ``+5`` -> ("+", 5); ``-5`` -> ("-", 5)."""
    sign = text[0] if text[:1] in ("+", "-") else "="
    digits = text[1:] if sign != "=" else text
    if not digits.isdecimal() or (sign == "=" and int(digits) > 100):
        raise argparse.ArgumentTypeError(f"{text!r} is not a volume (0-100, +N or -N)")
    return sign, int(digits)


def _count_arg(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of notifications (1 or more)")
    return int(text)


def apply_volume(current: int, change: tuple[str, int]) -> int:
    sign, value = change
    result = current + value if sign == "+" else current - value if sign == "-" else value
    return max(0, min(100, result))


# -- handlers ----------------------------------------------------------------


async def _discover(args: argparse.Namespace) -> int:
    from ..discovery import discover

    timeout = args.timeout if args.timeout is not None else 3.0
    servers = await discover(timeout)
    text = (
        table(
            ["NAME", "HOST", "SERVER", "STREAM", "HTTP", "SEEN AS"],
            [
                (
                    s.name,
                    s.host,
                    s.control_address,
                    s.stream_port or "-",
                    s.http_port or "-",
                    " ".join(t.split(".")[0] for t in s.types),
                )
                for s in servers
            ],
        )
        if servers
        else "no snapserver found"
    )
    emit(args, [s.to_json() for s in servers], text)
    return 0 if servers else 1


def _status(args: argparse.Namespace) -> int:
    status = lookup.read_status(args)
    emit(args, status.to_json(), format_status(status))
    return 0


async def _room_change(
    args: argparse.Namespace,
    change: Callable[[Room], Room],
    call: Callable[[SnapControl, Room], Awaitable[None]],
) -> int:
    """Find the room, make the one call that brings it to ``change(room)``, print that."""
    async with lookup.connected(args) as (snap, status):
        after = change(status.room(args.room))
        await call(snap, after)
    emit(args, after.to_json(), room_line(after))
    return 0


async def _room_volume(args: argparse.Namespace) -> int:
    return await _room_change(
        args,
        lambda r: dataclasses.replace(r, volume=apply_volume(r.volume, args.volume)),
        lambda snap, r: snap.set_room_volume(r.id, r.volume),
    )


async def _room_mute(args: argparse.Namespace) -> int:
    return await _room_change(
        args,
        lambda r: dataclasses.replace(r, muted=args.muted),
        lambda snap, r: snap.set_room_mute(r.id, r.muted),
    )


async def _room_latency(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        # What snapserver applied: it lowers a latency beyond its stream buffer.
        after = dataclasses.replace(
            room, latency=await snap.set_room_latency(room.id, args.latency)
        )
    emit(args, after.to_json(), room_line(after))
    return 0


def _new_name(args: argparse.Namespace) -> str:
    """The name ``rename`` sets: checked as the API checks it; "" clears it."""
    from ..rooms import new_name

    return new_name(args.name) if args.name else ""


async def _room_rename(args: argparse.Namespace) -> int:
    name = _new_name(args)
    return await _room_change(
        args,
        lambda r: dataclasses.replace(r, name=name or r.host or r.id, configured_name=name),
        lambda snap, r: snap.set_room_name(r.id, name),
    )


async def _room_del(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        await snap.delete_room(room.id)
    emit(args, {"deleted": room.id}, f"deleted {room.name} ({room.id})")
    return 0


async def _group_change(
    args: argparse.Namespace,
    call: Callable[[SnapControl, ServerStatus, Group], Awaitable[object]],
) -> int:
    """Find the group, make the change, print the group as snapserver has it now."""
    async with lookup.connected(args) as (snap, status):
        group = status.group(args.group)
        await call(snap, status, group)
        after = (await snap.status()).group(group.id)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _group_join(args: argparse.Namespace) -> int:
    return await _group_change(
        args, lambda snap, status, g: house.join(snap, [status.room(n) for n in args.rooms], g)
    )


async def _group_leave(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        await house.leave(snap, room, status)
        after = (await snap.status()).group_of(room)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _group_stream(args: argparse.Namespace) -> int:
    return await _group_change(
        args,
        lambda snap, status, g: snap.set_group_stream(g.id, status.stream(args.stream).id),
    )


async def _group_mute(args: argparse.Namespace) -> int:
    return await _group_change(args, lambda snap, _s, g: snap.set_group_mute(g.id, args.muted))


async def _group_rename(args: argparse.Namespace) -> int:
    name = _new_name(args)
    return await _group_change(args, lambda snap, _s, g: snap.set_group_name(g.id, name))


async def _group_volume(args: argparse.Namespace) -> int:
    return await _group_change(
        args,
        lambda snap, _s, g: house.set_group_volume(snap, g, apply_volume(g.volume, args.volume)),
    )


async def _party(args: argparse.Namespace) -> int:
    from ..errors import NotFoundError
    from ..snapserver import ANNOUNCE_STREAM

    async with lookup.connected(args) as (snap, status):
        if args.stream:
            stream = status.stream(args.stream)
        elif music := [s for s in status.streams if s.id != ANNOUNCE_STREAM]:
            stream = music[0]  # not announcements' own stream, idle but for them
        else:
            raise NotFoundError("snapserver has no streams")
        group = await house.party(snap, stream.id, status)
    emit(args, group.to_json(), group_line(group))
    return 0


def _scene_save(args: argparse.Namespace) -> int:
    from ..scenes import Scene, SceneStore, scene_name

    name = scene_name(args.name)  # before the server is asked: a bad name is not its fault
    status = lookup.read_status(args)
    store = SceneStore()
    scene = Scene.capture(name, status)
    store.save(scene)
    emit(args, scene.to_json(), f"saved scene {scene.name!r} to {store.path}")
    return 0


async def _scene_restore(args: argparse.Namespace) -> int:
    from ..scenes import SceneStore, restore

    scene = SceneStore().get(args.name)
    async with await lookup.control(args) as snap:
        done = await restore(snap, scene)
    text = f"restored scene {scene.name!r}"
    if done.missing_rooms:
        text += f" (rooms no longer known: {', '.join(done.missing_rooms)})"
    if done.missing_streams:
        text += f" (streams no longer known: {', '.join(done.missing_streams)}; kept the current)"
    data = {
        "restored": scene.name,
        "missing": list(done.missing_rooms),
        "missing_streams": list(done.missing_streams),
    }
    emit(args, data, text)
    return 0


async def _scene_list(args: argparse.Namespace) -> int:
    from ..scenes import SceneStore

    scenes = SceneStore().load()
    rows = [
        (s.name, s.saved_at, len(s.groups), sum(len(g.rooms) for g in s.groups))
        for s in sorted(scenes.values(), key=lambda s: s.name)
    ]
    text = table(["SCENE", "SAVED", "GROUPS", "ROOMS"], rows) if rows else "no scenes saved"
    emit(args, [s.to_json() for s in scenes.values()], text)
    return 0


async def _scene_delete(args: argparse.Namespace) -> int:
    from ..scenes import SceneStore

    SceneStore().delete(args.name)
    emit(args, {"deleted": args.name}, f"deleted scene {args.name!r}")
    return 0


async def _watch(args: argparse.Namespace) -> int:
    import asyncio

    snap = await lookup.control(args, reconnect=True)
    queue: asyncio.Queue[Event] = asyncio.Queue()
    snap.subscribe(queue.put_nowait)  # before connecting: the connect event is the first line
    seen = 0
    async with snap:
        while args.count is None or seen < args.count:
            event = await queue.get()
            if args.json:
                line = safe_json(
                    {"time": time.time(), "method": event.method, "params": event.params}
                )
            else:
                line = format_event(event)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            seen += 1
    return 0
