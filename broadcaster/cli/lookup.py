"""Which snapserver a control command talks to, and the connection to it.

The server: ``--server``, else ``$BROADCASTER_SERVER`` or the config file's
``server``, else the first one mDNS finds that answers, else 127.0.0.1:1705.

Commands that make several calls connect with :func:`connected` (asyncio,
:class:`~broadcaster.control.SnapControl`); those that make one read
(``status``, ``scene save``) call :func:`read_status`, which is blocking and
imports neither asyncio (unless it has to ask mDNS) nor, when there is nothing
for it to read, config.py (:func:`control_settings`): they start in a
fraction of the time (docs/performance.md).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..jsonrpc import DEFAULT_TIMEOUT
from ..settings import DEFAULT_CONTROL_PORT, ENV_PREFIX, config_file_name, parse_address
from .parsing import Parser

if TYPE_CHECKING:
    from ..config import Config
    from ..control import SnapControl
    from ..rooms import ServerStatus

DEFAULT_SERVER = "127.0.0.1"
DISCOVERY_TIMEOUT = 1.5


def control_settings(config: str | None, env: Mapping[str, str] | None = None) -> tuple[str, float]:
    """The configured server (``""``: none) and request timeout: those of
    ``config.load(config)``.  config.py (TOML, every section's checks) is
    loaded only when it has something to read: a config file, or a
    ``BROADCASTER_*`` variable other than ``$BROADCASTER_SERVER``; without
    them its result is the defaults and that variable, checked as it checks it.
    """
    env = os.environ if env is None else env
    only_server = all(not k.startswith(ENV_PREFIX) or k == ENV_PREFIX + "SERVER" for k in env)
    if config is None and only_server and not os.path.exists(config_file_name(env)):
        server = env.get(ENV_PREFIX + "SERVER", "")
        if server:
            parse_address(server, DEFAULT_CONTROL_PORT, f"${ENV_PREFIX}SERVER")
        return server, DEFAULT_TIMEOUT
    from ..config import load

    cfg = load(config, env=env)
    return cfg.server, cfg.timeout


def configured(args: argparse.Namespace, overrides: Mapping[str, object]) -> Config:
    """The configuration a long-running command (``run``, ``serve``, ``announce``)
    works with: ``--config``'s file (or the default one) and the environment, with
    the command line over them: ``--server`` and ``--timeout`` where the command has
    them, and the command's own options as ``overrides`` (dotted keys, ``None``: not given).
    """
    from ..config import load

    common = {"server": getattr(args, "server", None), "timeout": getattr(args, "timeout", None)}
    return load(args.config, overrides={**common, **overrides})


def _named_server(args: argparse.Namespace) -> tuple[tuple[str, int] | None, float]:
    """The server ``args`` or the configuration name (None: none), and the timeout."""
    server, timeout = control_settings(getattr(args, "config", None))
    if args.timeout is not None:
        timeout = args.timeout
        if not 0 < timeout <= 300:
            raise ConfigError(f"--timeout {timeout:g}: it must be more than 0 and at most 300 s")
    if args.server:
        return parse_address(args.server, DEFAULT_CONTROL_PORT, "--server"), timeout
    return (parse_address(server, DEFAULT_CONTROL_PORT) if server else None), timeout


async def _discovered(timeout: float) -> tuple[str, int, float]:
    """The first server mDNS finds that answers, else the default one."""
    import logging

    from .. import discovery
    from ..errors import DiscoveryError

    log = logging.getLogger(__name__)
    try:
        found = await discovery.discover(min(DISCOVERY_TIMEOUT, timeout))
    except DiscoveryError as err:
        log.info("%s", err)
        found = []
    if found:
        server = await discovery.first_answering(found)
        log.info("using snapserver %s found with mDNS", server.control_address)
        host, port = parse_address(server.control_address, DEFAULT_CONTROL_PORT)
        return host, port, timeout
    return DEFAULT_SERVER, DEFAULT_CONTROL_PORT, timeout


async def resolve_server(args: argparse.Namespace) -> tuple[str, int, float]:
    """Host, port and timeout: --server, $BROADCASTER_SERVER, config, mDNS, localhost."""
    named, timeout = _named_server(args)
    if named is not None:
        return *named, timeout
    return await _discovered(timeout)


def resolve_server_now(args: argparse.Namespace) -> tuple[str, int, float]:
    """:func:`resolve_server` outside an event loop (one runs only to ask mDNS)."""
    named, timeout = _named_server(args)
    if named is not None:
        return *named, timeout
    import asyncio

    from . import setup_logging

    setup_logging(args)  # zeroconf may warn: as the other commands show it
    return asyncio.run(_discovered(timeout))


def read_status(args: argparse.Namespace) -> ServerStatus:
    """The status of the server for ``args``: one blocking request."""
    from ..oneshot import read_status

    host, port, timeout = resolve_server_now(args)
    return read_status(host, port, timeout=timeout)


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


@functools.cache
def common_options() -> argparse.ArgumentParser:
    """``--server``, ``--json`` and ``--timeout``, shared by every control command
    (a parent parser: argparse copies its arguments, so one serves them all)."""
    parent = Parser(add_help=False)
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
