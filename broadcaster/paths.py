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

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from .settings import config_file_name


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


FALLBACK_BASE = Path("/tmp")
"""Where the runtime directory goes without $XDG_RUNTIME_DIR: shared with every user."""


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """broadcaster's per-user runtime directory (fifo, generated config)."""
    base = _env(env).get("XDG_RUNTIME_DIR")
    return Path(base) / "broadcaster" if base else FALLBACK_BASE / f"broadcaster-{os.getuid()}"


def private_runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    """:func:`runtime_dir`, created with mode 0700 or checked to be ours alone.

    Under $XDG_RUNTIME_DIR (private to the user by definition) a directory an
    older broadcaster left group-readable is tightened; in the shared /tmp
    fallback a symbolic link, another user's directory or one open to others
    is refused (:class:`~broadcaster.errors.UnsafePathError`): whoever made it
    could replace snapserver.conf, whose ``process://`` sources run programs.
    """
    from .files import private_dir  # tempfile and more: not for config_file's quick callers

    path = runtime_dir(env)
    if _env(env).get("XDG_RUNTIME_DIR"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o700)
    return private_dir(path)


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """broadcaster's per-user state directory (snapserver data, scenes)."""
    base = _env(env).get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "broadcaster"


def config_file(env: Mapping[str, str] | None = None) -> Path:
    """The default configuration file (the rule is :func:`settings.config_file_name`'s)."""
    return Path(config_file_name(env))


def scenes_file(env: Mapping[str, str] | None = None) -> Path:
    """The scenes file shared by the CLI and the service."""
    return state_dir(env) / "scenes.json"
