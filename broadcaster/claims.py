"""One broadcaster per app and per destination in a user session.

Two broadcasts of one app would each move it to their own capture sink (of
the same name) and move it back whenever the other took it; two broadcasts
into one pipe would interleave their audio.  So a broadcast first claims its
app and its destination: an exclusive ``flock`` on a small file in the
runtime directory, which holds the claimant's pid for the refusal message.
The kernel drops the lock when its holder dies (even ``kill -9``), so a crash
never leaves a stale claim; the file itself stays, harmlessly, for the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator, Mapping

from .errors import BusyError
from .files import private_dir
from .paths import private_runtime_dir, runtime_dir


def held(key: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether a claim on ``key`` is held now (by any process, this one included)."""
    path = runtime_dir(env) / "claims" / _file_name(key)  # only looked at: made by claim()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases our probe
    return False


def _file_name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock"


@contextlib.contextmanager
def claim(key: str, taken: str, env: Mapping[str, str] | None = None) -> Iterator[None]:
    """Hold ``key`` for the ``with`` block, or raise :class:`BusyError`.

    ``taken`` is the refusal, completed with the holder's pid (``'spotify'
    is already captured``  -> ``... by pid 4242; stop that broadcaster first``).
    """
    folder = private_dir(private_runtime_dir(env) / "claims")
    fd = os.open(folder / _file_name(key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            who = f"pid {holder}" if holder.isdigit() else holder
            raise BusyError(f"{taken} by {who}; stop that broadcaster first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
