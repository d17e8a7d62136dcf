"""Cover art a player announced as a local file, checked before it is served.

Spotify, browsers and mpv announce their cover as ``mpris:artUrl =
file:///...`` (a file in their cache).  A phone cannot open that path, so
``broadcaster serve`` hands the file out through its own origin, with limits
that keep it from becoming a way to read other files: it serves only the
URL the stream's player announced (the route takes no path), only a
regular file, at most :data:`MAX_BYTES`, and only if its first bytes are
those of a PNG, JPEG, GIF or WebP image (the type sent is the one found
there, never guessed from the name).  Remote (http/https) covers are
linked, never fetched by broadcaster.
"""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import CoverError, CoverMissingError

MAX_BYTES = 5 << 20
"""The largest cover served (album art is rarely above 1 MiB)."""

#: Leading bytes of the image types served -> their content type.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Cover:
    data: bytes
    content_type: str


def image_type(data: bytes) -> str | None:
    """The content type of an image by its first bytes, or None for anything else."""
    for magic, content_type in MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def local_path(url: str) -> str:
    """The absolute path of a ``file://`` URL on this machine."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise CoverError(f"{url[:80]!r} is not a file on this machine")
    path = unquote(parts.path)
    if not os.path.isabs(path) or "\0" in path:
        raise CoverError(f"{url[:80]!r} is not an absolute file path")
    return path


def read_cover_sync(url: str, limit: int = MAX_BYTES) -> Cover:
    """The image at ``url`` (``file://``), or :class:`CoverError` saying why not."""
    path = local_path(url)
    try:
        # O_NONBLOCK: a fifo put there must not hang the read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise CoverMissingError(f"the cover file cannot be read: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CoverError("the announced cover is not a regular file")
        if info.st_size > limit:
            raise CoverError(f"the cover is larger than {limit >> 20} MiB")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise CoverError(f"the cover is larger than {limit >> 20} MiB")
    content_type = image_type(data)
    if content_type is None:
        raise CoverError("the announced cover is not a PNG, JPEG, GIF or WebP image")
    return Cover(data, content_type)


async def read_cover(url: str, limit: int = MAX_BYTES) -> Cover:
    """:func:`read_cover_sync` in a thread (the file may sit on a slow disk)."""
    return await asyncio.to_thread(read_cover_sync, url, limit)
