"""Audio formats and normalization to snapserver's format.

Whatever arrives (any rate, s16/s32/f32, mono to 7.1) leaves as 48000 Hz,
S16LE, stereo, block for block.  The work is block-wise numpy plus soxr's
streaming resampler: no per-sample Python loops.  When the input already is the
target format and no processing is asked for, bytes pass through untouched.

numpy and soxr are imported lazily (inside :class:`Converter`) so that modules
importing :class:`AudioFormat` stay cheap for the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from .blocks import Processor
from .errors import AudioFormatError

if TYPE_CHECKING:
    import numpy as np

    from .blocks import FloatBlock
    from .resample import DirectResampler, FloatResampler


SampleFormat = Literal["s16", "s32", "f32"]

_BYTES_PER_SAMPLE: Final[dict[str, int]] = {"s16": 2, "s32": 4, "f32": 4}
_NUMPY_DTYPE: Final[dict[str, str]] = {"s16": "<i2", "s32": "<i4", "f32": "<f4"}
_FULL_SCALE: Final[dict[str, float]] = {"s16": 32768.0, "s32": 2147483648.0, "f32": 1.0}


@dataclass(frozen=True)
class AudioFormat:
    """Interleaved PCM: sample rate in Hz, channel count, sample encoding."""

    rate: int
    channels: int
    sample: SampleFormat

    def __post_init__(self) -> None:
        if not 1000 <= self.rate <= 768000:
            raise AudioFormatError(f"sample rate {self.rate} Hz is out of range (1000-768000)")
        if not 1 <= self.channels <= 32:
            raise AudioFormatError(f"channel count {self.channels} is out of range (1-32)")
        if self.sample not in _BYTES_PER_SAMPLE:
            raise AudioFormatError(
                f"sample format {self.sample!r} is not one of {', '.join(_BYTES_PER_SAMPLE)}"
            )

    @property
    def bytes_per_frame(self) -> int:
        return self.channels * _BYTES_PER_SAMPLE[self.sample]

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.bytes_per_frame

    def frames_in(self, milliseconds: float) -> int:
        return round(self.rate * milliseconds / 1000)

    def bytes_in(self, milliseconds: float) -> int:
        return self.frames_in(milliseconds) * self.bytes_per_frame

    @property
    def snapcast(self) -> str:
        """snapserver's ``sampleformat`` notation, e.g. ``48000:16:2``."""
        bits = _BYTES_PER_SAMPLE[self.sample] * 8
        return f"{self.rate}:{bits}:{self.channels}"

    def __str__(self) -> str:
        return f"{self.rate} Hz {self.sample} {self.channels}ch"

    @classmethod
    def parse(cls, text: str) -> AudioFormat:
        """Parse ``RATE:SAMPLE:CHANNELS`` such as ``44100:f32:2`` or ``48000:16:2``."""
        match = re.fullmatch(r"\s*(\d+)\s*:\s*(s16|s32|f32|16|32)\s*:\s*(\d+)\s*", text)
        if not match:
            raise AudioFormatError(
                f"audio format {text!r} is not RATE:SAMPLE:CHANNELS (e.g. 44100:f32:2)"
            )
        rate, sample, channels = match.groups()
        sample = {"16": "s16", "32": "s32"}.get(sample, sample)
        return cls(int(rate), int(channels), sample)  # type: ignore[arg-type]


SNAPCAST_FORMAT: Final = AudioFormat(48000, 2, "s16")
"""What snapserver's pipe source is configured for (``sampleformat=48000:16:2``)."""


def downmix_matrix(channels: int) -> np.ndarray:
    """A (channels x 2) matrix that folds ``channels`` into stereo.

    Layouts follow PipeWire's/WAVE's default channel order.  Centre and surround
    channels go in at -3 dB (ITU-R BS.775), LFE is dropped, and each output row
    is normalized so that a signal present at equal level in every channel keeps
    its level (nothing can clip).
    """
    import numpy as np

    h = 0.7071067811865476
    layouts: dict[int, list[tuple[float, float]]] = {
        1: [(1.0, 1.0)],
        2: [(1.0, 0.0), (0.0, 1.0)],
        3: [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0)],  # 2.1: FL FR LFE
        4: [(1.0, 0.0), (0.0, 1.0), (h, 0.0), (0.0, h)],  # quad: FL FR RL RR
        5: [(1.0, 0.0), (0.0, 1.0), (h, h), (h, 0.0), (0.0, h)],  # FL FR FC RL RR
        6: [(1.0, 0.0), (0.0, 1.0), (h, h), (0.0, 0.0), (h, 0.0), (0.0, h)],  # 5.1
        8: [  # 7.1: FL FR FC LFE RL RR SL SR
            (1.0, 0.0),
            (0.0, 1.0),
            (h, h),
            (0.0, 0.0),
            (h, 0.0),
            (0.0, h),
            (h, 0.0),
            (0.0, h),
        ],
    }
    rows = layouts.get(channels)
    if rows is None:  # unknown layout: odd channels left, even channels right
        rows = [(1.0, 0.0) if i % 2 == 0 else (0.0, 1.0) for i in range(channels)]
    matrix = np.array(rows, dtype=np.float32)
    if channels == 1:
        return matrix
    sums = matrix.sum(axis=0)
    return (matrix / np.where(sums > 0, sums, 1.0)).astype(np.float32)


class Converter:
    """Streaming converter from ``source`` format to snapserver's format.

    ``push(data)`` accepts any number of bytes (a partial frame is kept for the
    next call) and returns all the output it can produce now, in whole frames:
    nothing waits to fill a fixed-size chunk (snapserver reads its pipe in its
    own chunks), so the only delay added is the resampler's.  ``processor``
    (see :mod:`broadcaster.processing`) runs on float stereo blocks after
    resampling and before quantization.  When the input already is the target
    format and nothing processes it, bytes pass through untouched.

    This runs once per captured block (~50 times a second) for as long as the
    app plays, so every call counts.  Three ways through, in :attr:`path`:

    * ``"passthrough"``: the input is the target format, nothing processes it;
    * ``"direct"``: stereo input that only changes rate goes to libsoxr in
      one call per block (see :mod:`broadcaster.resample`);
    * ``"float"``: anything else (downmix, processing, no ``libsoxr0``):
      float32 blocks through numpy, python-soxr and the processor, then
      rounded and clipped to 16 bits, with bare numpy ufuncs and ``out=``.

    ``direct=False`` forces the float path where the direct one would do.
    """

    def __init__(
        self,
        source: AudioFormat,
        target: AudioFormat = SNAPCAST_FORMAT,
        *,
        quality: str = "HQ",
        processor: Processor | None = None,
        direct: bool = True,
    ) -> None:
        if target.sample != "s16" or target.channels != 2:
            raise AudioFormatError(f"target format must be s16 stereo, not {target}")
        self.source = source
        self.target = target
        self._processor = processor
        self._frame = source.bytes_per_frame
        self._pending = b""  # input bytes short of a whole frame
        self.passthrough = source == target and processor is None
        self._resampler: FloatResampler | None = None
        self._direct: DirectResampler | None = None
        self.path = "passthrough"
        if self.passthrough:
            return
        from .resample import DirectResampler, FloatResampler, direct_available

        if (
            direct
            and source.rate != target.rate
            and source.channels == 2
            and processor is None
            and direct_available()
        ):
            self._direct = DirectResampler(source.rate, target.rate, source.sample, quality)
            self.path = "direct"
            return
        import numpy as np

        self.path = "float"
        self._np = np
        self._dtype = np.dtype(_NUMPY_DTYPE[source.sample])
        self._scale = np.float32(1.0 / _FULL_SCALE[source.sample])
        # f32 stereo needs no conversion at all: the block is used as read.
        self._as_is = source.sample == "f32" and source.channels == 2
        self._matrix = None if source.channels == 2 else downmix_matrix(source.channels)
        if source.rate != target.rate:
            self._resampler = FloatResampler(source.rate, target.rate, quality)

    def push(self, data: bytes | bytearray | memoryview) -> bytes:
        """Convert ``data``; return the output ready now (whole frames, maybe none)."""
        if self._direct is not None and not self._pending and not len(data) % self._frame:
            return self._direct.push(bytes(data))  # the usual case, in as few steps as can be
        if self._pending:
            data = self._pending + bytes(data)
            self._pending = b""
        whole = len(data) - len(data) % self._frame
        if whole != len(data):  # rare: pw-record writes whole frames
            self._pending = bytes(data[whole:])
            data = data[:whole]
        if self.passthrough or not whole:
            return bytes(data)
        if self._direct is not None:
            return self._direct.push(bytes(data))
        return self._convert(self._to_float_stereo(data), last=False)

    def reset(self) -> None:
        """Start a new input stream: drop a partial frame and the resampler's history."""
        self._pending = b""
        if self._resampler is not None:
            self._resampler.clear()
        if self._direct is not None:
            self._direct.clear()

    def flush(self) -> bytes:
        """Drain the resampler at end of stream (a trailing partial frame is dropped)."""
        self._pending = b""
        if self._direct is not None:
            return self._direct.flush()
        if self.passthrough or self._resampler is None:
            return b""
        return self._convert(self._np.zeros((0, 2), dtype=self._np.float32), last=True)

    def _to_float_stereo(self, raw: bytes | bytearray | memoryview) -> FloatBlock:
        np = self._np
        samples = np.frombuffer(raw, dtype=self._dtype).reshape(-1, self.source.channels)
        if self._as_is:
            as_is: FloatBlock = samples
            return as_is
        block: FloatBlock = samples.astype(np.float32)
        block *= self._scale
        if self._matrix is not None:
            block = np.matmul(block, self._matrix, dtype=np.float32)
        return block

    def _convert(self, block: FloatBlock, *, last: bool) -> bytes:
        np = self._np
        if self._resampler is not None:
            block = self._resampler.push(block, last)
        if self._processor is not None and len(block):
            block = self._processor(block)
        if not len(block):
            return b""
        # Round to nearest; clip instead of wrapping.  Processing stages own
        # limiting (see broadcaster.processing); this is the last safety net.
        # Full scale is 32768, as for the input (ffmpeg and sox do the same).
        scaled = np.multiply(block, np.float32(32768.0))
        np.rint(scaled, out=scaled)
        np.minimum(scaled, np.float32(32767.0), out=scaled)
        np.maximum(scaled, np.float32(-32768.0), out=scaled)
        out: bytes = scaled.astype("<i2").tobytes()
        return out
