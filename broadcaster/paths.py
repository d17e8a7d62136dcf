"""Where broadcaster keeps its files: the XDG directories, in one place.

* runtime (fifos, the generated snapserver config, now-playing targets):
  ``$XDG_RUNTIME_DIR/broadcaster``, else ``/tmp/broadcaster-UID``;
* state (snapserver's data directory, the scenes):
  ``$XDG_STATE_HOME/broadcaster``, else ``~/.local/state/broadcaster``;
* configuration: ``$XDG_CONFIG_HOME/broadcaster/config.toml``, else
  ``~/.config/broadcaster/config.toml``.

Each function reads ``env`` (default: the process environment), so tests and
the service can pass their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """broadcaster's per-user runtime directory (fifo, generated config)."""
    base = _env(env).get("XDG_RUNTIME_DIR")
    return Path(base) / "broadcaster" if base else Path(f"/tmp/broadcaster-{os.getuid()}")


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """broadcaster's per-user state directory (snapserver data, scenes)."""
    base = _env(env).get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "broadcaster"


def config_file(env: Mapping[str, str] | None = None) -> Path:
    """The default configuration file."""
    values = _env(env)
    base = values.get("XDG_CONFIG_HOME") or os.path.join(values.get("HOME", "~"), ".config")
    return Path(base).expanduser() / "broadcaster" / "config.toml"


def scenes_file(env: Mapping[str, str] | None = None) -> Path:
    """The scenes file shared by the CLI and the service."""
    return state_dir(env) / "scenes.json"
