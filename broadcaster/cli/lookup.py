"""Which snapserver a control command talks to, and the connection to it."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..control import SnapControl
    from ..rooms import ServerStatus

_LOGGER = logging.getLogger(__name__)

DEFAULT_SERVER = "127.0.0.1"
DISCOVERY_TIMEOUT = 1.5


async def resolve_server(args: argparse.Namespace) -> tuple[str, int, float]:
    """Host, port and timeout: --server, $BROADCASTER_SERVER, config, mDNS, localhost."""
    from ..config import DEFAULT_CONTROL_PORT, load, parse_address
    from ..errors import ConfigError

    cfg = load(getattr(args, "config", None))
    timeout = args.timeout if args.timeout is not None else cfg.timeout
    if args.timeout is not None and not 0 < timeout <= 300:
        raise ConfigError(f"--timeout {timeout:g} is out of range (0-300 s)")
    if args.server:
        host, port = parse_address(args.server, DEFAULT_CONTROL_PORT)
        return host, port, timeout
    if cfg.server:
        host, port = parse_address(cfg.server, DEFAULT_CONTROL_PORT)
        return host, port, timeout
    from .. import discovery
    from ..errors import DiscoveryError

    try:
        found = await discovery.discover(min(DISCOVERY_TIMEOUT, timeout))
    except DiscoveryError as err:
        _LOGGER.info("%s", err)
        found = []
    if found:
        server = await discovery.first_answering(found)
        _LOGGER.info("using snapserver %s found with mDNS", server.control_address)
        host, port = parse_address(server.control_address, DEFAULT_CONTROL_PORT)
        return host, port, timeout
    return DEFAULT_SERVER, DEFAULT_CONTROL_PORT, timeout


async def control(args: argparse.Namespace, *, reconnect: bool = False) -> SnapControl:
    """The control connection for ``args``, not yet connected: use it with ``async with``
    (which connects and reads the status once, :attr:`SnapControl.last_status`)."""
    from ..control import SnapControl

    host, port, timeout = await resolve_server(args)
    return SnapControl(host, port, timeout=timeout, reconnect=reconnect)


@contextlib.asynccontextmanager
async def connected(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[SnapControl, ServerStatus]]:
    """Connected to the server for ``args``, with the status read at connect; closed after."""
    async with await control(args) as snap:
        status = snap.last_status
        assert status is not None  # connect() reads it
        yield snap, status


def common_options() -> argparse.ArgumentParser:
    """``--server``, ``--json`` and ``--timeout``, shared by every control command."""
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
