"""The ``broadcaster`` command line: a thin layer over the library.

Each command group lives in its own module with a ``register(subparsers)``
function that adds its sub-commands; a sub-command stores a handler in
``args.handler`` taking the parsed namespace and returning an exit status.
Most handlers are ``async`` and run in ``asyncio.run``; the quick ones
(``status``, ``scene save``: one read) are plain functions over the blocking
client, so they never import asyncio.  Building the parser imports no
handler's modules: those (asyncio, numpy, soxr, aiohttp, zeroconf, config.py)
are imported inside the handlers, so ``broadcaster --help`` and ``broadcaster
status`` start fast (docs/performance.md).

Every :class:`~broadcaster.errors.BroadcasterError` is turned into one line on
stderr and exit status 1 here, in one place; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING

from ..errors import BroadcasterError

if TYPE_CHECKING:
    import argparse

    from .parsing import Deferred

# Modules that contribute sub-commands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "broadcaster.cli.pipeline",
    "broadcaster.cli.serve",
    "broadcaster.cli.control",
    "broadcaster.cli.transport",
    "broadcaster.cli.announce",
    "broadcaster.cli.calibrate",
)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_READER_GONE = 141
"""stdout's reader left (``| head``): the status of a program SIGPIPE ends."""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, one for that command line: only the command
    it names, with its arguments.

    Building every sub-command's arguments costs more than a quick command's
    whole run, so the commands' ``register`` functions record their calls
    (:class:`~.parsing.Deferred`).  The command is the first word when that
    is a command's name; else a first parse with argparse's own rules finds
    it (or prints the top-level help, or the error).  The parser is then
    built with that command alone: errors and help past that point name only
    it.
    """
    from .parsing import Deferred

    commands = Deferred()
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    if argv is None:
        return _assemble(commands, None)
    names = {args[0] for _call, args, _kwargs, _deferred in commands.calls}
    if argv and argv[0] in names:  # the command first, as argparse would read it
        return _assemble(commands, (argv[0],))
    listing = _assemble(commands, ())
    _misplaced_option(listing, argv, names)
    found, _rest = listing.parse_known_args(argv)
    return _assemble(commands, (found.command,))


COMMAND_OPTIONS = ("--server", "--timeout", "--json")
"""Options of the commands (:func:`.lookup.common_options`), not of ``broadcaster``."""


def _misplaced_option(
    parser: argparse.ArgumentParser, argv: Sequence[str], names: set[str]
) -> None:
    """A usage error for ``broadcaster --server H status``, which argparse would
    report as "invalid choice: 'H'" (the option's value read as the command)."""
    command = next((a for a in argv if a in names), None)
    for arg in argv[: argv.index(command)] if command else ():
        option = arg.split("=", 1)[0]
        if option in COMMAND_OPTIONS:
            parser.error(f"{option} goes after the command: broadcaster {command} ... {option}")


def _assemble(commands: Deferred, whole: Sequence[str] | None) -> argparse.ArgumentParser:
    """The top-level parser with every command and its arguments (``whole`` None),
    every command listed without its arguments (``whole`` empty), or only the
    commands in ``whole``, whole."""
    from .parsing import Parser

    parser = Parser(
        prog="broadcaster",
        description="Play one application's audio in every Snapcast room, and manage the rooms.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="debug logging and full tracebacks on errors"
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="configuration file (default: $BROADCASTER_CONFIG or "
        "~/.config/broadcaster/config.toml)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for call, args, kwargs, deferred in commands.calls:
        assert call == "add_parser", call  # all a register() does with the sub-parsers
        if whole is None or args[0] in whole:
            deferred.replay(subparsers.add_parser(*args, **kwargs))
        elif not whole:  # the first parse: names and help, to check and to list them
            listed = {"help": kwargs["help"]} if "help" in kwargs else {}
            subparsers.add_parser(args[0], add_help=False, **listed)
    return parser


def setup_logging(args: argparse.Namespace) -> None:
    """Log to stderr at the level ``-v``/``--debug`` ask for (WARNING without them).

    A quick command without them logs nothing of its own and skips this (and
    the import of logging) unless it has to ask mDNS (:mod:`.lookup`).
    """
    import logging

    verbose, debug = getattr(args, "verbose", 0), getattr(args, "debug", False)
    level = logging.DEBUG if debug or verbose >= 2 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen command, and return the exit status.

    A Ctrl-C before the command's own handling (while its modules load) exits
    130 like one during it, without a traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv).parse_args(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if args.verbose or args.debug or not _quick(args.handler):
        setup_logging(args)
    try:
        result = args.handler(args)
        if isinstance(result, Coroutine):  # an async handler
            import asyncio

            result = asyncio.run(result)
    except BroadcasterError as err:
        if args.debug:
            import logging

            logging.getLogger("broadcaster").exception("command failed")
        print_error(err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return int(result)


def _quick(handler: Callable[[argparse.Namespace], object]) -> bool:
    """A plain function, not ``async``: a one-read command that must start fast."""
    import inspect  # already imported (by dataclasses) when a command module is

    return not inspect.iscoroutinefunction(handler)


def print_error(err: BroadcasterError) -> None:
    """The one line a failed command prints (names in it may come from the network)."""
    from .formatting import terminal_safe

    print(f"broadcaster: error: {terminal_safe(str(err))}", file=sys.stderr)


def run() -> None:
    """Console-script entry point."""
    try:
        try:
            status = main()
        finally:
            sys.stdout.flush()  # a reader that left shows here, not at interpreter exit
    except KeyboardInterrupt:  # between the import of this module and main()
        status = EXIT_INTERRUPTED
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise
        # `broadcaster status | head -3`: stop quietly, as a program SIGPIPE ends.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_READER_GONE
    sys.exit(status)


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll says POLLERR)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (OSError, ValueError):
        return False
