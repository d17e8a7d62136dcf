"""Room control commands: discover, status, room, group, party, scene, watch.

The parsers and one handler per command, thin over the library:
:mod:`broadcaster.control` (the connection), :mod:`broadcaster.rooms` (the
state and name resolution), :mod:`broadcaster.house` (operations over several
requests), :mod:`broadcaster.scenes` and :mod:`broadcaster.discovery`.  Which
server: :mod:`.lookup`; output: :mod:`.formatting`.  Every command takes
``--server``, ``--json`` and ``--timeout``.

A command connects once (which reads the status once) and makes its calls; a
room change prints the room as the accepted call left it, without reading the
status again.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from . import lookup
from .formatting import emit, format_event, format_status, group_line, room_line, table

if TYPE_CHECKING:
    from ..control import Event
    from ..rooms import Room


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

    room = subparsers.add_parser("room", help="change one room (a snapclient)")
    rooms = room.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add(rooms, "volume", "set a room's volume: 40, +5 or -5", _room_volume)
    p.add_argument("room", help="room name, host name or id")
    p.add_argument("volume", type=_volume_arg, help="0-100, or +N / -N relative")
    p = add(rooms, "mute", "mute a room", _room_mute)
    p.add_argument("room", help="room name, host name or id")
    p.set_defaults(muted=True)
    p = add(rooms, "unmute", "unmute a room", _room_mute)
    p.add_argument("room", help="room name, host name or id")
    p.set_defaults(muted=False)
    p = add(rooms, "latency", "set a room's extra latency in ms", _room_latency)
    p.add_argument("room", help="room name, host name or id")
    p.add_argument("latency", type=int, help="milliseconds")
    p = add(rooms, "rename", "rename a room", _room_rename)
    p.add_argument("room", help="room name, host name or id")
    p.add_argument("name", help="the new name")
    p = add(rooms, "delete", "forget a room (it comes back if its snapclient connects)", _room_del)
    p.add_argument("room", help="room name, host name or id")

    group = subparsers.add_parser("group", help="change a group of rooms")
    groups = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add(groups, "join", "move rooms into a group", _group_join)
    p.add_argument("group", help="group name or id, or a room of the group")
    p.add_argument("rooms", nargs="+", help="rooms to move into it")
    p = add(groups, "leave", "take a room out of its group", _group_leave)
    p.add_argument("room", help="room name, host name or id")
    p = add(groups, "stream", "set the stream a group plays", _group_stream)
    p.add_argument("group", help="group name or id, or a room of the group")
    p.add_argument("stream", help="stream name or id")
    p = add(groups, "mute", "mute a group", _group_mute)
    p.add_argument("group", help="group name or id, or a room of the group")
    p.set_defaults(muted=True)
    p = add(groups, "unmute", "unmute a group", _group_mute)
    p.add_argument("group", help="group name or id, or a room of the group")
    p.set_defaults(muted=False)
    p = add(groups, "rename", "rename a group", _group_rename)
    p.add_argument("group", help="group name or id, or a room of the group")
    p.add_argument("name", help="the new name")
    p = add(groups, "volume", "set a group's volume, scaling its rooms like snapweb", _group_volume)
    p.add_argument("group", help="group name or id, or a room of the group")
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
    p.add_argument("--count", type=int, metavar="N", help="exit after N notifications")


def _volume_arg(text: str) -> tuple[str, int]:
    """``40`` -> ("=", 40); ``+5`` -> ("+", 5); ``-5`` -> ("-", 5)."""
    sign = text[0] if text[:1] in ("+", "-") else "="
    digits = text[1:] if sign != "=" else text
    if not digits.isdigit() or (sign == "=" and int(digits) > 100):
        raise argparse.ArgumentTypeError(f"{text!r} is not a volume (0-100, +N or -N)")
    return sign, int(digits)


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


async def _status(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (_snap, status):
        pass
    emit(args, status.to_json(), format_status(status))
    return 0


def _room_done(args: argparse.Namespace, room: Room) -> int:
    emit(args, room.to_json(), room_line(room))
    return 0


async def _room_volume(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        volume = apply_volume(room.volume, args.volume)
        await snap.set_room_volume(room.id, volume)
    return _room_done(args, dataclasses.replace(room, volume=volume))


async def _room_mute(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        await snap.set_room_mute(room.id, args.muted)
    return _room_done(args, dataclasses.replace(room, muted=args.muted))


async def _room_latency(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        await snap.set_room_latency(room.id, args.latency)
    return _room_done(args, dataclasses.replace(room, latency=args.latency))


async def _room_rename(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        await snap.set_room_name(room.id, args.name)
    name = args.name or room.host or room.id
    return _room_done(args, dataclasses.replace(room, name=name, configured_name=args.name))


async def _room_del(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        await snap.delete_room(room.id)
    emit(args, {"deleted": room.id}, f"deleted {room.name} ({room.id})")
    return 0


async def _group_join(args: argparse.Namespace) -> int:
    from .. import house

    async with lookup.connected(args) as (snap, status):
        group = status.group(args.group)
        await house.join(snap, [status.room(name) for name in args.rooms], group)
        after = (await snap.status()).group(group.id)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _group_leave(args: argparse.Namespace) -> int:
    from .. import house

    async with lookup.connected(args) as (snap, status):
        room = status.room(args.room)
        await house.leave(snap, room, status)
        after = (await snap.status()).group_of(room)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _group_stream(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        group = status.group(args.group)
        await snap.set_group_stream(group.id, status.stream(args.stream).id)
        after = (await snap.status()).group(group.id)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _group_mute(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        group = status.group(args.group)
        await snap.set_group_mute(group.id, args.muted)
        after = (await snap.status()).group(group.id)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _group_rename(args: argparse.Namespace) -> int:
    async with lookup.connected(args) as (snap, status):
        group = status.group(args.group)
        await snap.set_group_name(group.id, args.name)
        after = (await snap.status()).group(group.id)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _group_volume(args: argparse.Namespace) -> int:
    from .. import house

    async with lookup.connected(args) as (snap, status):
        group = status.group(args.group)
        await house.set_group_volume(snap, group, apply_volume(group.volume, args.volume))
        after = (await snap.status()).group(group.id)
    emit(args, after.to_json(), group_line(after))
    return 0


async def _party(args: argparse.Namespace) -> int:
    from .. import house
    from ..errors import NotFoundError

    async with lookup.connected(args) as (snap, status):
        if args.stream:
            stream = status.stream(args.stream)
        elif status.streams:
            stream = status.streams[0]
        else:
            raise NotFoundError("snapserver has no streams")
        group = await house.party(snap, stream.id, status)
    emit(args, group.to_json(), group_line(group))
    return 0


async def _scene_save(args: argparse.Namespace) -> int:
    from ..scenes import Scene, SceneStore

    async with lookup.connected(args) as (_snap, status):
        pass
    store = SceneStore()
    scene = Scene.capture(args.name, status)
    store.save(scene)
    emit(args, scene.to_json(), f"saved scene {scene.name!r} to {store.path}")
    return 0


async def _scene_restore(args: argparse.Namespace) -> int:
    from ..scenes import SceneStore, restore

    scene = SceneStore().get(args.name)
    async with await lookup.control(args) as snap:
        missing = await restore(snap, scene)
    text = f"restored scene {scene.name!r}"
    if missing:
        text += f" (rooms no longer known: {', '.join(missing)})"
    emit(args, {"restored": scene.name, "missing": missing}, text)
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
    snap = await lookup.control(args, reconnect=True)
    queue: asyncio.Queue[Event] = asyncio.Queue()
    snap.subscribe(queue.put_nowait)  # before connecting: the connect event is the first line
    seen = 0
    async with snap:
        while args.count is None or seen < args.count:
            event = await queue.get()
            if args.json:
                line = json.dumps(
                    {"time": time.time(), "method": event.method, "params": event.params},
                    ensure_ascii=False,
                )
            else:
                line = format_event(event)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            seen += 1
    return 0
