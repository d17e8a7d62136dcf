"""The few settings facts that need neither TOML, nor dataclasses, nor pathlib.

:mod:`broadcaster.config` builds on them; the command line's quick commands
(``broadcaster status``) read them without loading config.py, when there is
no config file and no ``BROADCASTER_*`` variable but ``$BROADCASTER_SERVER``
(see :func:`broadcaster.cli.lookup.control_settings`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .errors import ConfigError

ENV_PREFIX = "BROADCASTER_"
"""Environment variables ``BROADCASTER_<KEY>`` / ``BROADCASTER_<SECTION>_<KEY>``."""

DEFAULT_CONTROL_PORT = 1705
"""snapserver's JSON-RPC control port."""


def config_file_name(env: Mapping[str, str] | None = None) -> str:
    """The default configuration file: ``$XDG_CONFIG_HOME/broadcaster/config.toml``,
    else ``~/.config/broadcaster/config.toml`` (:func:`broadcaster.paths.config_file`
    as a Path)."""
    values = os.environ if env is None else env
    base = values.get("XDG_CONFIG_HOME") or os.path.join(values.get("HOME", "~"), ".config")
    return os.path.join(os.path.expanduser(base), "broadcaster", "config.toml")


def check_port(value: int, key: str) -> None:
    if not 0 < value < 65536:
        raise ConfigError(f"{key} = {value} is not a TCP port (1-65535)")


def parse_address(text: str, default_port: int, source: str = "") -> tuple[str, int]:
    """Split ``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) into host and port;
    ``source`` (``--server``, ``$BROADCASTER_SERVER``) is named in the error."""
    where = f"{source} " if source else ""
    match = re.fullmatch(r"\s*(?:\[([^\]]+)\]|([^:\s]+))(?::(\d+))?\s*", text)
    if not match:
        raise ConfigError(f"{where}{text!r} is not HOST or HOST:PORT")
    host = match.group(1) or match.group(2)
    port = int(match.group(3)) if match.group(3) else default_port
    if not 0 < port < 65536:
        raise ConfigError(f"{where}{text!r}: {port} is not a TCP port (1-65535)")
    return host, port
