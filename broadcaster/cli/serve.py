"""``broadcaster serve``: the service with its HTTP API and web page."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the service: captures, rooms, HTTP API and web page",
        description="Run broadcaster as a service: start and stop captures of apps at run "
        "time, control the rooms, and serve the HTTP API and web page. Without --server, a "
        "snapserver on this machine is used, or one is started with a pipe stream per slot.",
    )
    parser.add_argument("--bind", metavar="ADDRESS", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="listen port (default 1788; 0: any free one, with --no-publish)"
    )
    parser.add_argument(
        "--token",
        help="token required for changes when listening beyond loopback "
        "(better: $BROADCASTER_WEB_TOKEN or web.token in the config file)",
    )
    parser.add_argument("--slots", type=int, help="pipe streams of the managed snapserver")
    parser.add_argument("--server", metavar="HOST[:PORT]", help="snapserver's control address")
    parser.add_argument(
        "--embedded",
        choices=("auto", "always", "never"),
        help="start a snapserver of our own: auto (if none answers), always, never",
    )
    parser.add_argument(
        "--no-publish",
        action="store_true",
        help="no zeroconf: do not announce the service, nor watch for snapserver coming back",
    )
    parser.add_argument(
        "--print-snapserver-conf",
        action="store_true",
        help="print the managed snapserver's configuration (for a snapserver run by its own "
        "unit) and exit",
    )
    parser.set_defaults(handler=_serve)


async def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from ..service import check_serving
    from ..snapserver import EmbeddedSnapserver
    from . import signals
    from .lookup import configured

    config = configured(
        args,
        {
            "snapserver.mode": args.embedded,
            "web.bind": args.bind,
            "web.port": args.port,
            "web.token": args.token,
            "web.slots": args.slots,
            "web.publish": False if args.no_publish else None,
        },
    )
    if args.print_snapserver_conf:
        print(EmbeddedSnapserver(config.snapserver, slots=config.web.slots).render(), end="")
        return 0
    check_serving(config)

    from aiohttp import web

    from ..errors import BroadcasterError
    from ..service import Service
    from ..web.app import make_app

    service = Service(config)
    runner = web.AppRunner(make_app(service), handle_signals=False, access_log=None)
    stop = asyncio.Event()
    with signals.handled(stop):
        try:
            await runner.setup()
            site = web.TCPSite(runner, config.web.bind, config.web.port)
            try:
                await site.start()
            except OSError as err:
                raise BroadcasterError(
                    f"cannot listen on {config.web.bind}:{config.web.port}: {err.strerror}; "
                    "set web.port (or --port) to a free port"
                ) from None
            port = _bound_port(runner) or config.web.port  # web.port 0: the one the OS chose
            print(f"broadcaster: serving on http://{config.web.bind}:{port}/", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()
    logging.getLogger(__name__).info("stopped")
    return 0


def _bound_port(runner: web.AppRunner) -> int:
    """The TCP port the app's first site listens on (0 if none)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return 0
