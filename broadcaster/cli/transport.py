"""Transport commands: ``broadcaster play|pause|toggle|next|previous [STREAM]``.

Thin over :mod:`broadcaster.transport`: the command goes to snapserver as
``Stream.Control``, like the Snapcast apps send it, so every surface sees the
same player.  Without STREAM, the only stream (or the only stream with a
player to control) is meant.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rooms import ServerStatus, StreamInfo

HELP = {
    "play": "start the stream's player (the captured app)",
    "pause": "pause the stream's player",
    "toggle": "play if paused, pause if playing",
    "next": "skip to the next track",
    "previous": "go back to the previous track",
}


def register(subparsers: Any) -> None:
    from .lookup import common_options

    common = common_options()
    for name, text in HELP.items():
        parser: argparse.ArgumentParser = subparsers.add_parser(
            name, help=text, description=text, parents=[common]
        )
        parser.add_argument(
            "stream",
            nargs="?",
            help="stream name or id (default: the only stream, or the only one with a player)",
        )
        parser.set_defaults(handler=_transport, transport=name)


def pick_stream(status: ServerStatus, wanted: str | None) -> StreamInfo:
    """The stream named, else the only one, else the only one with a player
    (announcements' own stream, idle but for them, is not counted)."""
    from ..errors import AmbiguousNameError, NotFoundError
    from ..snapserver import ANNOUNCE_STREAM

    if wanted:
        return status.stream(wanted)
    streams = [s for s in status.streams if s.id != ANNOUNCE_STREAM]
    if len(streams) == 1:
        return streams[0]
    controllable = [s for s in streams if s.properties.get("canControl") is True]
    if len(controllable) == 1:
        return controllable[0]
    if not streams:
        raise NotFoundError("snapserver has no streams")
    names = ", ".join(repr(s.id) for s in streams)
    raise AmbiguousNameError(f"name the stream: snapserver has several ({names})")


async def _transport(args: argparse.Namespace) -> int:
    from ..transport import prepare, send, to_json
    from .formatting import emit
    from .lookup import connected

    async with connected(args) as (snap, status):
        stream = pick_stream(status, args.stream)
        before, params = prepare(stream, args.transport)
        await send(snap, params)
    title = before.title or ""
    what = f"{title} — {', '.join(before.artist)}" if before.artist else title
    emit(
        args,
        {"stream": stream.id, "command": args.transport, "player": to_json(before, stream.id)},
        f"{args.transport}: sent to stream {stream.id}" + (f" ({what})" if what else ""),
    )
    return 0
