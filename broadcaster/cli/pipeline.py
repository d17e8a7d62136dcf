"""``broadcaster run``: broadcast one application's audio to every room."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="broadcast one application's audio to every room",
        description="Capture one application's audio on PipeWire and play it in every "
        "Snapcast room. Without --pipe/--tcp/--server, a snapserver on this machine is used, "
        "or one is started.",
    )
    parser.add_argument(
        "app",
        nargs="?",
        help="the application: process name, binary name or PipeWire application.name",
    )
    parser.add_argument("--pid", type=int, help="the application's process id instead of a name")
    parser.add_argument(
        "--sink",
        help="isolate the app on this existing sink (e.g. the snd-aloop one) "
        "instead of a virtual sink",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pipe", metavar="PATH", help="snapserver's named pipe to write into")
    where.add_argument(
        "--tcp", metavar="URL", help="a snapserver tcp source in server mode: tcp://HOST:PORT"
    )
    parser.add_argument("--server", metavar="HOST[:PORT]", help="snapserver's control address")
    parser.add_argument("--stream", help="the snapserver stream (name or id) to feed")
    parser.add_argument(
        "--embedded",
        choices=("auto", "always", "never"),
        help="start a snapserver of our own: auto (if none answers), always, never",
    )
    parser.add_argument("--capture-format", metavar="RATE:SAMPLE:CH", help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-restore", action="store_true", help="leave the app on the capture sink at exit"
    )
    parser.add_argument(
        "--announcer",
        metavar="APP",
        help="mix APP's sound in and lower the music while it plays (a doorbell program)",
    )
    parser.add_argument(
        "--duck", type=_gain, metavar="DB", help="how far announcements lower the music (12dB)"
    )
    _add_processing(parser)
    parser.set_defaults(handler=_run)


def _gain(text: str) -> float:
    from ..errors import ConfigError
    from ..processing import parse_gain

    try:
        return parse_gain(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_processing(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "processing", "real-time effects on the normalized audio (a limiter prevents clipping)"
    )
    group.add_argument(
        "--speed",
        type=float,
        metavar="FACTOR",
        help="play faster and higher (nightcore: 1.1) or slower, 0.5-2.0",
    )
    group.add_argument(
        "--speed-policy",
        choices=("prebuffer", "pad"),
        help="when speed outruns the live app: prebuffer (buffer --prebuffer seconds, play "
        "until drained, refill; the default) or pad (fill the shortfall with silence)",
    )
    group.add_argument(
        "--prebuffer", type=float, metavar="SECONDS", help="speed buffer to fill (default 3)"
    )
    group.add_argument("--gain", type=_gain, metavar="DB", help="gain in dB, e.g. -3dB or +2dB")
    group.add_argument("--mono", action="store_true", default=None, help="mix down to mono")
    group.add_argument("--swap", action="store_true", default=None, help="swap left and right")
    group.add_argument(
        "--filter",
        metavar="MODULE:FUNCTION",
        help="a Python function taking and returning a frames x 2 float32 numpy block",
    )


async def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from ..errors import ConfigError
    from ..pipeline import Broadcast
    from ..pipewire import TargetApp, refuse_broad_pid
    from . import signals
    from .lookup import configured

    if (args.app is None) == (args.pid is None):
        raise ConfigError("name the application to broadcast, or give --pid (not both)")
    if args.pid is not None and args.pid <= 0:
        raise ConfigError(f"--pid {args.pid} is not a process id")
    config = configured(
        args,
        {
            "capture.sink": args.sink,
            "capture.format": args.capture_format,
            "capture.restore": False if args.no_restore else None,
            "delivery.pipe": args.pipe,
            "delivery.tcp": args.tcp,
            "delivery.stream": args.stream,
            "snapserver.mode": args.embedded,
            "processing.speed": args.speed,
            "processing.speed_policy": args.speed_policy,
            "processing.prebuffer_s": args.prebuffer,
            "processing.gain_db": args.gain,
            "processing.mono": args.mono,
            "processing.swap": args.swap,
            "processing.filter": args.filter,
            "announce.announcer": args.announcer,
            "announce.duck_db": abs(args.duck) if args.duck is not None else None,
        },
    )
    if args.pid is not None:
        refuse_broad_pid(args.pid)
    broadcast = Broadcast(TargetApp(name=args.app or "", pid=args.pid), config)
    stop = asyncio.Event()
    with signals.handled(stop):
        await broadcast.run(stop)
    logging.getLogger(__name__).info("stopped")
    return 0
