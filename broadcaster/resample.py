"""Sample-rate conversion with soxr, with the least delay and CPU soxr offers.

Two ways into the same library (libsoxr, HQ, minimum phase), chosen by
:class:`~broadcaster.audio.Converter`:

* :class:`DirectResampler`: interleaved s16/s32/f32 stereo in, S16LE stereo
  out, in **one** call to libsoxr per block (libsoxr also rounds and clips
  to 16 bits).  Used when nothing but the rate changes.  This path runs
  ~50 times a second on a cache gone cold since the last block, where every
  Python or numpy call costs tens of microseconds: through python-soxr and
  numpy (bytes -> array, resample, scale, round, clip, cast, bytes) a 20 ms
  block cost twice ffmpeg's CPU; in one C call it costs less (bench).
  libsoxr is the shared library Debian ships as ``libsoxr0`` (ffmpeg depends
  on it too); python-soxr links its own copy statically and offers neither
  mixed input/output types nor the phase setting, hence ctypes.
* :class:`FloatResampler`: float32 stereo blocks through python-soxr, for
  the processing chain (which needs floats) and when ``libsoxr.so.0`` is
  not installed.

Minimum phase (as ``sox rate -M``): the same magnitude response and quality
as soxr's default linear phase, but its delay fits inside one 20 ms block,
where linear phase held back up to 21 ms and made a block's last sample
wait for the block after next (p99 41 ms instead of 21 ms, bench).
"""

from __future__ import annotations

import ctypes
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from .clib import CLibrary
from .errors import AudioFormatError

if TYPE_CHECKING:
    from .blocks import FloatBlock

_LOGGER = logging.getLogger(__name__)

LIBSOXR: Final = "libsoxr.so.0"

# soxr.h (libsoxr 0.1.x)
_SOXR_FLOAT32_I: Final = 0
_SOXR_INT32_I: Final = 2
_SOXR_INT16_I: Final = 3
_SOXR_NO_DITHER: Final = 8
_SOXR_MINIMUM_PHASE: Final = 0x30
_RECIPES: Final = {"QQ": 0, "LQ": 1, "MQ": 2, "HQ": 4, "VHQ": 6}
"""python-soxr's quality names: libsoxr's SOXR_QQ .. SOXR_VHQ (SOXR_HQ = SOXR_20_BITQ)."""

_INPUT_TYPES: Final = {
    "s16": (_SOXR_INT16_I, 4),
    "s32": (_SOXR_INT32_I, 8),
    "f32": (_SOXR_FLOAT32_I, 8),
}
"""Sample format -> (libsoxr type, bytes per stereo frame)."""


class _IoSpec(ctypes.Structure):
    _fields_ = (
        ("itype", ctypes.c_int),
        ("otype", ctypes.c_int),
        ("scale", ctypes.c_double),
        ("e", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
    )


class _QualitySpec(ctypes.Structure):
    _fields_ = (
        ("precision", ctypes.c_double),
        ("phase_response", ctypes.c_double),
        ("passband_end", ctypes.c_double),
        ("stopband_begin", ctypes.c_double),
        ("e", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
    )


def _declare(lib: ctypes.CDLL) -> None:
    """The prototypes (soxr.h) of the libsoxr functions used here."""
    size_t_p = ctypes.POINTER(ctypes.c_size_t)
    lib.soxr_io_spec.restype = _IoSpec
    lib.soxr_io_spec.argtypes = (ctypes.c_int, ctypes.c_int)
    lib.soxr_quality_spec.restype = _QualitySpec
    lib.soxr_quality_spec.argtypes = (ctypes.c_ulong, ctypes.c_ulong)
    lib.soxr_create.restype = ctypes.c_void_p
    lib.soxr_create.argtypes = (
        ctypes.c_double,
        ctypes.c_double,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(_IoSpec),
        ctypes.POINTER(_QualitySpec),
        ctypes.c_void_p,
    )
    lib.soxr_process.restype = ctypes.c_char_p
    lib.soxr_process.argtypes = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        size_t_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        size_t_p,
    )
    lib.soxr_clear.restype = ctypes.c_char_p
    lib.soxr_clear.argtypes = (ctypes.c_void_p,)
    lib.soxr_delete.restype = None
    lib.soxr_delete.argtypes = (ctypes.c_void_p,)


_LIBSOXR: Final = CLibrary(LIBSOXR, _declare, "resampling through python-soxr")


def direct_available() -> bool:
    """True if :class:`DirectResampler` can run here (``libsoxr0`` installed)."""
    return _LIBSOXR.load() is not None


class DirectResampler:
    """libsoxr, HQ minimum phase: interleaved stereo PCM in, S16LE stereo out.

    Not thread-safe: one thread pushes (the capture thread).
    """

    def __init__(self, in_rate: int, out_rate: int, sample: str, quality: str = "HQ") -> None:
        lib = _LIBSOXR.load()
        if lib is None:
            raise AudioFormatError(f"{LIBSOXR} is not available: {_LIBSOXR.error}")
        itype, self._in_frame = _INPUT_TYPES[sample]
        io = lib.soxr_io_spec(itype, _SOXR_INT16_I)
        io.flags |= _SOXR_NO_DITHER  # like the float path, ffmpeg and `sox -D`
        recipe = lib.soxr_quality_spec(_RECIPES[quality.upper()] | _SOXR_MINIMUM_PHASE, 0)
        error = ctypes.c_char_p()
        handle = lib.soxr_create(
            float(in_rate), float(out_rate), 2, ctypes.byref(error), io, recipe, None
        )
        if not handle:
            reason = (error.value or b"unknown error").decode(errors="replace")
            raise AudioFormatError(f"libsoxr cannot resample {in_rate} -> {out_rate} Hz: {reason}")
        self._handle: int = handle
        self._finalizer = weakref.finalize(self, lib.soxr_delete, handle)
        self._process = lib.soxr_process
        self._clear = lib.soxr_clear
        self._ratio = out_rate / in_rate
        self._idone = ctypes.c_size_t()
        self._odone = ctypes.c_size_t()
        self._idone_ref = ctypes.byref(self._idone)
        self._odone_ref = ctypes.byref(self._odone)
        self._out = ctypes.create_string_buffer(0)
        self._out_frames = 0
        self._max_in = 0
        self._room(8192)  # a pw-record read is at most a few thousand frames

    def _room(self, in_frames: int) -> None:
        # What one call may return: this input resampled plus what soxr held back.
        self._max_in = in_frames
        self._out_frames = int(in_frames * self._ratio) + 4096
        self._out = ctypes.create_string_buffer(self._out_frames * 4)

    def push(self, data: bytes) -> bytes:
        """Resample whole input frames; return the S16LE stereo output ready now.

        The usual case is one libsoxr call and one copy out: this runs for
        every block, and each Python step costs microseconds on a cold cache.
        """
        frames = len(data) // self._in_frame
        if frames > self._max_in:
            self._room(frames)
        error = self._process(
            self._handle,
            data,
            frames,
            self._idone_ref,
            self._out,
            self._out_frames,
            self._odone_ref,
        )
        if error:
            self._check(error)
        out = ctypes.string_at(self._out, self._odone.value * 4)
        taken = self._idone.value
        if taken == frames:
            return out
        if not taken and not out:
            raise AudioFormatError("libsoxr took no input and gave no output")
        return out + self.push(data[taken * self._in_frame :])  # the output was full

    def flush(self) -> bytes:
        """End of input: what soxr still holds."""
        out: list[bytes] = []
        while True:
            self._check(
                self._process(
                    self._handle,
                    None,
                    0,
                    self._idone_ref,
                    self._out,
                    self._out_frames,
                    self._odone_ref,
                )
            )
            if not self._odone.value:
                return b"".join(out)
            out.append(ctypes.string_at(self._out, self._odone.value * 4))

    def clear(self) -> None:
        """Forget the stream so far (a new input stream starts)."""
        self._check(self._clear(self._handle))

    @staticmethod
    def _check(error: bytes | None) -> None:
        if error:
            raise AudioFormatError(f"libsoxr: {error.decode(errors='replace')}")


class FloatResampler:
    """python-soxr's streaming resampler for float32 stereo blocks, minimum phase if it can.

    python-soxr offers soxr's linear-phase filters only, but passes its quality
    argument to libsoxr's ``soxr_quality_spec`` unchanged, so the phase bit
    reaches libsoxr through its extension type (``soxr.soxr_ext.CSoxr``, not
    a documented API).  If a release changes that, this falls back to
    :class:`soxr.ResampleStream`, logs it, and only the latency grows
    (``minimum_phase`` says which one runs).
    """

    def __init__(self, in_rate: float, out_rate: float, quality: str = "HQ") -> None:
        import soxr

        self.minimum_phase = False
        try:
            from soxr import soxr_ext

            recipe = int(getattr(soxr, quality.upper())) | _SOXR_MINIMUM_PHASE
            spec = (float(in_rate), float(out_rate), 2, soxr_ext.SOXR_FLOAT32_I, recipe)
            try:
                engine = soxr_ext.CSoxr(*spec, False)  # python-soxr >= 1.1: (..., vr)
            except TypeError:
                engine = soxr_ext.CSoxr(*spec)
            self._process: Callable[[FloatBlock, bool], FloatBlock] = engine.process_float32
            self._clear: Callable[[], object] = engine.clear
            self.minimum_phase = True
        except (ImportError, AttributeError, TypeError, ValueError, RuntimeError) as err:
            _LOGGER.info("soxr's minimum-phase filter is not reachable (%s): linear phase", err)
            stream = soxr.ResampleStream(in_rate, out_rate, 2, dtype="float32", quality=quality)
            self._process = stream.resample_chunk
            self._clear = stream.clear

    def push(self, block: FloatBlock, last: bool = False) -> FloatBlock:
        """Resample a C-contiguous frames x 2 float32 block; return what is ready."""
        return self._process(block, last)

    def clear(self) -> None:
        """Forget the stream so far (a new input stream starts)."""
        self._clear()
