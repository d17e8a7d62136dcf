"""Reading sound files with libsndfile (through ctypes).

libsndfile is what ``pw-play`` decodes with, and a dependency of
``pipewire-bin``, so every machine that runs broadcaster has it: WAV, FLAC,
Ogg/Vorbis, Opus and (libsndfile 1.1+) MP3.  Reading a file here, instead of
handing it to ``pw-play`` untouched, lets an announcement be checked (decodable,
not too long) before anything is touched, and given a lead-in and fades.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .clib import CLibrary
from .errors import AnnounceError

_SFM_READ = 0x10


class _SFInfo(ctypes.Structure):
    _fields_ = (
        ("frames", ctypes.c_int64),
        ("samplerate", ctypes.c_int),
        ("channels", ctypes.c_int),
        ("format", ctypes.c_int),
        ("sections", ctypes.c_int),
        ("seekable", ctypes.c_int),
    )


def _declare(lib: ctypes.CDLL) -> None:
    """The prototypes (sndfile.h) of the libsndfile functions used here."""
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_SFInfo))
    lib.sf_readf_float.restype = ctypes.c_int64
    lib.sf_readf_float.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    lib.sf_close.argtypes = (ctypes.c_void_p,)
    lib.sf_strerror.restype = ctypes.c_char_p
    lib.sf_strerror.argtypes = (ctypes.c_void_p,)


_LIBSNDFILE = CLibrary("libsndfile.so.1", _declare, "announcements cannot be played")


def _library() -> ctypes.CDLL:
    lib = _LIBSNDFILE.load()
    if lib is None:
        raise AnnounceError("libsndfile is not installed (sudo apt-get install libsndfile1)")
    return lib


@dataclass(frozen=True)
class Sound:
    """Decoded audio: ``samples`` is frames x channels float32 in [-1, 1]."""

    rate: int
    samples: npt.NDArray[np.float32]

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def read_sound(path: str | os.PathLike[str], *, max_seconds: float) -> Sound:
    """Decode ``path``; raise :class:`AnnounceError` if it cannot be or is too long."""
    lib = _library()
    info = _SFInfo()
    handle = lib.sf_open(os.fsencode(path), _SFM_READ, ctypes.byref(info))
    name = os.path.basename(os.fsdecode(path))
    if not handle:
        reason = (lib.sf_strerror(None) or b"unknown error").decode("utf-8", "replace")
        raise AnnounceError(f"cannot decode {name}: {reason}")
    try:
        if info.samplerate <= 0 or not 1 <= info.channels <= 8:
            raise AnnounceError(
                f"cannot decode {name}: {info.channels} channels at {info.samplerate} Hz"
            )
        limit = int(max_seconds * info.samplerate) + 1
        if info.frames > limit:
            raise AnnounceError(
                f"{name} lasts {info.frames / info.samplerate:.0f} s, longer than "
                f"the {max_seconds:g} s an announcement may last (announce.max_seconds)"
            )
        buffer = np.zeros((max(0, min(info.frames, limit)) + 1, info.channels), np.float32)
        got = lib.sf_readf_float(handle, buffer.ctypes.data, len(buffer))
    finally:
        lib.sf_close(handle)
    if got >= limit:
        raise AnnounceError(
            f"{name} is longer than the {max_seconds:g} s an announcement may last "
            "(announce.max_seconds)"
        )
    if got <= 0:
        raise AnnounceError(f"cannot decode {name}: it holds no audio")
    return Sound(info.samplerate, buffer[:got])
