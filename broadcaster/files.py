"""Writing files so that a crash never leaves a torn one.

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
import tempfile
from pathlib import Path


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
