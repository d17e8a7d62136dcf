"""Room control commands: discover, status, room, group, party, scene, watch.

Thin over :mod:`broadcaster.control` (the client), :mod:`broadcaster.rooms`
(the state and name resolution), :mod:`broadcaster.scenes` and
:mod:`broadcaster.discovery`.  Every command takes ``--server``, ``--json``
and ``--timeout``; the server is found by :func:`resolve_server`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..control import Event, SnapControl
    from ..discovery import DiscoveredServer
    from ..rooms import Group, Room, ServerStatus

_LOGGER = logging.getLogger(__name__)

DEFAULT_SERVER = "127.0.0.1"
DISCOVERY_TIMEOUT = 1.5


def _common() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        help="snapserver's control address (default: $BROADCASTER_SERVER, the config "
        "file's server, mDNS discovery, else 127.0.0.1:1705)",
    )
    parent.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parent.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="deadline for each request (default 5)"
    )
    return parent


def register(subparsers: Any) -> None:
    common = _common()

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
    for action, helptext in (("mute", "mute a room"), ("unmute", "unmute a room")):
        p = add(rooms, action, helptext, _room_mute)
        p.add_argument("room", help="room name, host name or id")
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
    for action, helptext in (("mute", "mute a group"), ("unmute", "unmute a group")):
        p = add(groups, action, helptext, _group_mute)
        p.add_argument("group", help="group name or id, or a room of the group")
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


# -- connection -----------------------------------------------------------


async def resolve_server(args: argparse.Namespace) -> tuple[str, int, float]:
    """Host, port and timeout: --server, $BROADCASTER_SERVER, config, mDNS, localhost."""
    from ..config import DEFAULT_CONTROL_PORT, load, parse_address

    cfg = load(getattr(args, "config", None))
    timeout = args.timeout if args.timeout is not None else cfg.timeout
    if args.timeout is not None and not 0 < timeout <= 300:
        from ..errors import ConfigError

        raise ConfigError(f"--timeout {timeout:g} is out of range (0-300 s)")
    if args.server:
        host, port = parse_address(args.server, DEFAULT_CONTROL_PORT)
        return host, port, timeout
    if cfg.server:
        host, port = parse_address(cfg.server, DEFAULT_CONTROL_PORT)
        return host, port, timeout
    from ..discovery import discover
    from ..errors import DiscoveryError

    try:
        found = await discover(min(DISCOVERY_TIMEOUT, timeout))
    except DiscoveryError as err:
        _LOGGER.info("%s", err)
        found = []
    if found:
        server = await _first_answering(found)
        _LOGGER.info("using snapserver %s found with mDNS", server.control_address)
        host, port = parse_address(server.control_address, DEFAULT_CONTROL_PORT)
        return host, port, timeout
    return DEFAULT_SERVER, DEFAULT_CONTROL_PORT, timeout


async def _first_answering(found: list[DiscoveredServer]) -> DiscoveredServer:
    """The first server whose control port accepts a connection (else the first found).

    mDNS can list a server that is gone (a record not yet expired) or several
    servers; one that does not even accept connections is skipped.
    """
    from ..snapserver import port_answers

    if len(found) > 1:
        for server in found:
            if await port_answers(server.address, server.control_port):
                return server
            _LOGGER.info("snapserver %s found with mDNS does not answer", server.control_address)
    return found[0]


async def _connect(args: argparse.Namespace, reconnect: bool = False) -> SnapControl:
    from ..control import SnapControl

    host, port, timeout = await resolve_server(args)
    snap = SnapControl(host, port, timeout=timeout, reconnect=reconnect)
    await snap.connect()
    return snap


# -- output ----------------------------------------------------------------


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    elif text:
        print(text)


def _width(text: str) -> int:
    """Terminal columns: wide (East Asian, emoji) characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def format_status(status: ServerStatus) -> str:
    streams = {s.id: s for s in status.streams}
    parts = [f"{status.server.name} {status.server.version} on {status.server.host}", ""]
    parts.append(
        table(
            ["GROUP", "STREAM", "MUTED", "VOLUME", "ROOMS"],
            [
                (
                    g.label,
                    streams[g.stream_id].name if g.stream_id in streams else g.stream_id,
                    "yes" if g.muted else "no",
                    g.volume,
                    len(g.rooms),
                )
                for g in status.groups
            ],
        )
    )
    parts.append("")
    parts.append(
        table(
            ["ROOM", "HOST", "ID", "CONNECTED", "VOLUME", "MUTED", "LATENCY", "GROUP", "STREAM"],
            [
                (
                    r.name,
                    r.host,
                    r.id,
                    "yes" if r.connected else "no",
                    r.volume,
                    "yes" if r.muted else "no",
                    f"{r.latency} ms",
                    status.group_of(r).label,
                    r.stream_id,
                )
                for r in status.rooms
            ],
        )
    )
    parts.append("")
    parts.append(
        table(
            ["STREAM", "STATUS", "CODEC", "FORMAT", "SOURCE", "NOW PLAYING"],
            [
                (s.id, s.status, s.codec, s.format, f"{s.scheme}://{s.path}", s.now_playing)
                for s in status.streams
            ],
        )
    )
    return "\n".join(parts)


def _room_line(room: Room) -> str:
    return (
        f"{room.name}: volume {room.volume}{' (muted)' if room.muted else ''}, "
        f"latency {room.latency} ms"
    )


def _group_line(group: Group) -> str:
    rooms = ", ".join(f"{r.name} {r.volume}" for r in group.rooms)
    return (
        f"{group.label}: stream {group.stream_id}, volume {group.volume}"
        f"{' (muted)' if group.muted else ''}; rooms: {rooms}"
    )


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
    _emit(args, [s.to_json() for s in servers], text)
    return 0 if servers else 1


async def _status(args: argparse.Namespace) -> int:
    snap = await _connect(args)
    try:
        status = await snap.status()
    finally:
        await snap.close()
    _emit(args, status.to_json(), format_status(status))
    return 0


async def _room_action(args: argparse.Namespace) -> int:
    snap = await _connect(args)
    try:
        status = await snap.status()
        room = status.room(args.room)
        action = args.action
        if action == "volume":
            await snap.set_room_volume(room.id, apply_volume(room.volume, args.volume))
        elif action in ("mute", "unmute"):
            await snap.set_room_mute(room.id, action == "mute")
        elif action == "latency":
            await snap.set_room_latency(room.id, args.latency)
        elif action == "rename":
            await snap.set_room_name(room.id, args.name)
        elif action == "delete":
            await snap.delete_room(room.id)
            _emit(args, {"deleted": room.id}, f"deleted {room.name} ({room.id})")
            return 0
        after = (await snap.status()).room(room.id)
    finally:
        await snap.close()
    _emit(args, after.to_json(), _room_line(after))
    return 0


_room_volume = _room_mute = _room_latency = _room_rename = _room_del = _room_action


async def _group_action(args: argparse.Namespace) -> int:
    snap = await _connect(args)
    try:
        status = await snap.status()
        action = args.action
        if action == "leave":
            room = status.room(args.room)
            await snap.leave(room, status)
            after = (await snap.status()).group_of(room)
        else:
            group = status.group(args.group)
            if action == "join":
                rooms = [status.room(name) for name in args.rooms]
                await snap.join(rooms, group)
            elif action == "stream":
                await snap.set_group_stream(group.id, status.stream(args.stream).id)
            elif action in ("mute", "unmute"):
                await snap.set_group_mute(group.id, action == "mute")
            elif action == "rename":
                await snap.set_group_name(group.id, args.name)
            elif action == "volume":
                await snap.set_group_volume(group, apply_volume(group.volume, args.volume))
            after = (await snap.status()).group(group.id)
    finally:
        await snap.close()
    _emit(args, after.to_json(), _group_line(after))
    return 0


_group_join = _group_leave = _group_stream = _group_mute = _group_rename = _group_volume = (
    _group_action
)


async def _party(args: argparse.Namespace) -> int:
    from ..errors import NotFoundError

    snap = await _connect(args)
    try:
        status = await snap.status()
        if args.stream:
            stream = status.stream(args.stream)
        elif status.streams:
            stream = status.streams[0]
        else:
            raise NotFoundError("snapserver has no streams")
        group = await snap.party(stream.id)
    finally:
        await snap.close()
    _emit(args, group.to_json(), _group_line(group))
    return 0


async def _scene_save(args: argparse.Namespace) -> int:
    from ..scenes import Scene, SceneStore

    snap = await _connect(args)
    try:
        status = await snap.status()
    finally:
        await snap.close()
    store = SceneStore()
    scene = Scene.capture(args.name, status)
    store.save(scene)
    _emit(args, scene.to_json(), f"saved scene {scene.name!r} to {store.path}")
    return 0


async def _scene_restore(args: argparse.Namespace) -> int:
    from ..scenes import SceneStore, restore

    scene = SceneStore().get(args.name)
    snap = await _connect(args)
    try:
        missing = await restore(snap, scene)
    finally:
        await snap.close()
    text = f"restored scene {scene.name!r}"
    if missing:
        text += f" (rooms no longer known: {', '.join(missing)})"
    _emit(args, {"restored": scene.name, "missing": missing}, text)
    return 0


async def _scene_list(args: argparse.Namespace) -> int:
    from ..scenes import SceneStore

    scenes = SceneStore().load()
    rows = [
        (s.name, s.saved_at, len(s.groups), sum(len(g.rooms) for g in s.groups))
        for s in sorted(scenes.values(), key=lambda s: s.name)
    ]
    text = table(["SCENE", "SAVED", "GROUPS", "ROOMS"], rows) if rows else "no scenes saved"
    _emit(args, [s.to_json() for s in scenes.values()], text)
    return 0


async def _scene_delete(args: argparse.Namespace) -> int:
    from ..scenes import SceneStore

    SceneStore().delete(args.name)
    _emit(args, {"deleted": args.name}, f"deleted scene {args.name!r}")
    return 0


def format_event(event: Event) -> str:
    """One line for a notification: time, method, then the interesting params."""
    params = dict(event.params)
    bits: list[str] = []
    if "id" in params:
        bits.append(str(params.pop("id")))
    for key, value in params.items():
        if isinstance(value, dict) and key in ("volume",):
            bits += [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, dict | list):
            bits.append(f"{key}={json.dumps(value, ensure_ascii=False)[:120]}")
        else:
            bits.append(f"{key}={value}")
    return f"{time.strftime('%H:%M:%S')} {event.method} {' '.join(bits)}".rstrip()


async def _watch(args: argparse.Namespace) -> int:
    from ..control import SnapControl

    host, port, timeout = await resolve_server(args)
    snap = SnapControl(host, port, timeout=timeout, reconnect=True)
    queue: asyncio.Queue[Event] = asyncio.Queue()
    snap.subscribe(queue.put_nowait)  # before connecting: the connect event is the first line
    seen = 0
    try:
        await snap.connect()
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
    finally:
        await snap.close()
    return 0
