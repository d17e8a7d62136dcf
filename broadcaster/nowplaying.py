"""Which app a stream's now-playing plugin follows: the target file contract.

broadcaster (a capture starting or stopping) writes, per snapserver stream,
which app it captures with :func:`write_target`; the stream's controlscript,
started by snapserver, reads it back with :func:`read_target` every second.
The file lives in the runtime directory (:func:`broadcaster.paths.runtime_dir`)
under ``now-playing/<stream>.json``.  :class:`PlayerMatch` is what is written:
an app name and/or a process id, and how either matches an MPRIS player.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UnsafePathError
from .files import write_atomic
from .paths import private_runtime_dir
from .proc import process_lineage

BUS_PREFIX = "org.mpris.MediaPlayer2."
"""The D-Bus name prefix of every MPRIS player."""


def _family(pid: int) -> list[int]:
    """``pid`` and its ancestors but init (init and the kernel are everybody's ancestors)."""
    chain = process_lineage(pid)
    return chain[:1] + [p for p in chain[1:] if p > 1]


@dataclass(frozen=True)
class PlayerMatch:
    """Which player is the captured app's: by app name, by process id, or both.

    ``app`` matches the bus name suffix (``org.mpris.MediaPlayer2.spotify``,
    also ``...spotify.instance123``) or the player's Identity, case-insensitively.
    ``pid`` matches a player whose owning process is that process, one of its
    ancestors or one of its descendants (browsers play audio from a child).
    """

    app: str | None = None
    pid: int | None = None

    def __post_init__(self) -> None:
        if not self.app and self.pid is None:
            raise ValueError("PlayerMatch needs an app name or a process id")

    def name_matches(self, bus_name: str, identity: str = "") -> bool:
        if not self.app:
            return False
        want = self.app.lower()
        suffix = bus_name.removeprefix(BUS_PREFIX).lower()
        base = suffix.split(".instance", 1)[0]
        return want in (suffix, base) or want == identity.lower()

    def pid_matches(self, owner_pid: int | None) -> bool:
        if self.pid is None or owner_pid is None:
            return False
        return self.pid in _family(owner_pid) or owner_pid in _family(self.pid)


def target_path(stream: str, base: Path | None = None) -> Path:
    """Where broadcaster tells a stream's controlscript which app it captures."""
    if base is None:
        base = private_runtime_dir()  # another user's directory is refused
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stream)
    return base / "now-playing" / f"{safe}.json"


def write_target(stream: str, match: PlayerMatch | None, base: Path | None = None) -> None:
    """Point ``stream``'s controlscript at the app now captured (None: at nothing).

    Call it when a capture starts or stops; the controlscript picks it up
    within a second.
    """
    data = {"app": match.app, "pid": match.pid} if match is not None else {}
    write_atomic(target_path(stream, base), json.dumps(data))


def read_target(stream: str, base: Path | None = None) -> PlayerMatch | None:
    """What :func:`write_target` last said for ``stream`` (None if nothing)."""
    try:
        data = json.loads(target_path(stream, base).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnsafePathError):
        return None
    if not isinstance(data, dict):
        return None
    app = data.get("app") if isinstance(data.get("app"), str) else None
    pid = data.get("pid") if isinstance(data.get("pid"), int) else None
    if not app and pid is None:
        return None
    return PlayerMatch(app, pid)
