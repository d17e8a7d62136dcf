"""``broadcaster announce``: a sound or spoken text over the music, ducked."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "announce",
        help="play a sound or say something over the music, in every room or in some",
        description="Play a sound file (WAV, FLAC, Ogg, MP3) or spoken text over the music of "
        "the running broadcasts: the music goes down while it plays and comes back after. "
        "With --rooms, only those rooms hear it and the others keep the music undisturbed.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("file", nargs="?", help="the sound file to play")
    what.add_argument("--say", metavar="TEXT", help="say TEXT (needs espeak-ng)")
    parser.add_argument(
        "--rooms",
        nargs="+",
        metavar="ROOM",
        help="play only in these rooms (name, host name or id); they return to their "
        "group, stream, volume and mute afterwards",
    )
    parser.add_argument(
        "--sink", action="append", help="the capture sink to play into (default: every broadcast's)"
    )
    parser.add_argument("--voice", help="espeak-ng voice for --say (espeak-ng --voices)")
    parser.add_argument("--server", metavar="HOST[:PORT]", help="snapserver's control address")
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="deadline for each request (default 5)"
    )
    parser.set_defaults(handler=_announce)


async def _announce(args: argparse.Namespace) -> int:
    import logging

    from ..announce import announce
    from .lookup import configured

    config = configured(args, {"announce.voice": args.voice})
    cfg = config.announce
    if args.rooms:
        from ..announce_rooms import announce_in_rooms

        result = await announce_in_rooms(
            config, args.rooms, sound_file=args.file, text=args.say or ""
        )
    else:
        result = await announce(
            sound_file=args.file,
            text=args.say or "",
            sinks=args.sink or (),
            lead_ms=cfg.lead_ms,
            max_seconds=cfg.max_seconds,
            voice=cfg.voice,
        )
    where = ", ".join(result.rooms) if result.rooms else ", ".join(result.sinks)
    logging.getLogger(__name__).info(
        "announced %.1f s in %s (waited %.1f s)", result.seconds, where, result.waited
    )
    return 0
