"""Writing files so that a crash never leaves a torn one, in directories only we can enter.

Everything broadcaster saves (scenes, snapserver's generated configuration,
the now-playing target of a stream's controlscript) goes through
:func:`write_atomic`: a temporary file in the same directory, flushed to disk,
then renamed over the old one.  Readers see the old file or the new one,
never half of either; if anything fails, the old file stays and the temporary
one is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import UnsafePathError
from .proc import process_exists


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text`` (UTF-8) atomically; raise OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_private(path: Path, *, kind: str = "directory") -> os.stat_result:
    """Refuse ``path`` unless it is ours alone: not a symbolic link, the right
    kind (``directory`` or ``pipe``), owned by this user, and (a directory)
    not accessible to group or others.  A pipe's own mode is the caller's to
    fix (snapserver 0.26 makes its pipes 0666, safe inside a 0700 directory).

    Another local user who made the path first (in a shared /tmp) could
    otherwise swap the files broadcaster and snapserver trust.
    """
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(f"{path} is a symbolic link; remove it (broadcaster makes its own)")
    wanted = stat.S_ISDIR if kind == "directory" else stat.S_ISFIFO
    if not wanted(info.st_mode):
        raise UnsafePathError(f"{path} is not a {kind}; remove it (broadcaster makes its own)")
    if info.st_uid != os.getuid():
        raise UnsafePathError(
            f"{path} belongs to another user (uid {info.st_uid}); remove it "
            "(broadcaster makes its own), or set XDG_RUNTIME_DIR"
        )
    if kind == "directory" and info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise UnsafePathError(
            f"{path} is open to other users (mode {mode:04o}); run chmod 700 {path}, or remove it"
        )
    return info


def private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or check the existing one with :func:`check_private`."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    check_private(path)
    return path


@contextlib.contextmanager
def scratch_dir(name: str, parent: Path | None = None) -> Iterator[Path]:
    """A private (0700) directory for one job's temporary files, removed afterwards.

    It is made in ``parent`` (default: the system's temporary directory) as
    ``NAME-PID-XXXX``, so that one left by a process killed before it could
    clean up (SIGKILL, a power cut) is recognised and removed by the next job
    of the same ``name``: it is ours and its process no longer exists.
    """
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    _sweep(parent, name)
    with tempfile.TemporaryDirectory(prefix=f"{name}-{os.getpid()}-", dir=parent) as tmp:
        yield Path(tmp)


def _sweep(parent: Path, name: str) -> None:
    """Remove ``parent``'s ``NAME-PID-*`` directories of this user whose process is gone."""
    for entry in parent.glob(f"{name}-*-*"):
        pid = entry.name.removeprefix(f"{name}-").split("-", 1)[0]
        if not pid.isdigit() or process_exists(int(pid)):
            continue
        with contextlib.suppress(OSError):
            info = os.lstat(entry)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
                shutil.rmtree(entry, ignore_errors=True)
