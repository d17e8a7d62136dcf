"""Audio formats and normalization to snapserver's format.

Whatever arrives (any rate, s16/s32/f32, mono to 7.1) leaves as fixed-size
chunks of 48000 Hz, S16LE, stereo.  The work is block-wise numpy plus soxr's
streaming resampler: no per-sample Python loops.  When the input already is the
target format and no processing is asked for, bytes are only re-chunked.

numpy and soxr are imported lazily (inside :class:`Converter`) so that modules
importing :class:`AudioFormat` stay cheap for the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from .errors import AudioFormatError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatBlock = npt.NDArray[np.float32]
    """Frames x 2 float32 samples in [-1, 1]: what processing stages see."""

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

CHUNK_MS: Final = 20
"""Size of the blocks delivered to snapserver, in milliseconds."""


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


Processor = Callable[["FloatBlock"], "FloatBlock"]
"""A processing stage: takes and returns a frames x 2 float32 block."""


class Converter:
    """Streaming converter from ``source`` format to fixed-size target chunks.

    ``push(data)`` accepts any number of bytes (partial frames are kept for the
    next call) and returns the complete output chunks now available, each
    exactly ``chunk_ms`` long.  ``processor`` (see :mod:`broadcaster.processing`)
    runs on float stereo blocks after resampling and before quantization.
    """

    def __init__(
        self,
        source: AudioFormat,
        target: AudioFormat = SNAPCAST_FORMAT,
        *,
        chunk_ms: int = CHUNK_MS,
        quality: str = "HQ",
        processor: Processor | None = None,
    ) -> None:
        if target.sample != "s16" or target.channels != 2:
            raise AudioFormatError(f"target format must be s16 stereo, not {target}")
        self.source = source
        self.target = target
        self.chunk_bytes = target.bytes_in(chunk_ms)
        self._processor = processor
        self._pending = bytearray()  # input bytes short of a whole frame
        self._out = bytearray()  # converted bytes short of a whole chunk
        self.passthrough = source == target and processor is None
        self._resampler = None
        if not self.passthrough:
            import numpy as np

            self._np = np
            self._dtype = np.dtype(_NUMPY_DTYPE[source.sample])
            self._scale = np.float32(1.0 / _FULL_SCALE[source.sample])
            # f32 stereo needs no conversion at all: the block is used as read.
            self._as_is = source.sample == "f32" and source.channels == 2
            self._matrix = None if source.channels == 2 else downmix_matrix(source.channels)
            if source.rate != target.rate:
                import soxr

                self._resampler = soxr.ResampleStream(
                    source.rate, target.rate, 2, dtype="float32", quality=quality
                )

    def push(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Convert ``data``; return the whole output chunks now ready."""
        if self.passthrough:
            self._out += data
        else:
            self._pending += data
            usable = len(self._pending) - len(self._pending) % self.source.bytes_per_frame
            if usable == len(self._pending):  # the usual case: whole frames, no copy
                raw, self._pending = self._pending, bytearray()
                self._emit(self._to_float_stereo(raw), last=False)
            elif usable:
                block = self._to_float_stereo(bytes(self._pending[:usable]))
                del self._pending[:usable]
                self._emit(block, last=False)
        return self._take_chunks()

    def flush(self) -> list[bytes]:
        """Drain the resampler at end of stream; the last partial chunk is padded."""
        if not self.passthrough and self._resampler is not None:
            empty = self._np.zeros((0, 2), dtype=self._np.float32)
            self._emit(empty, last=True)
        if self._out:
            self._out += bytes(self.chunk_bytes - len(self._out) % self.chunk_bytes)
        return self._take_chunks()

    def _to_float_stereo(self, raw: bytes | bytearray) -> FloatBlock:
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

    def _emit(self, block: FloatBlock, *, last: bool) -> None:
        np = self._np
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block, last=last)
        if self._processor is not None and len(block):
            block = self._processor(block)
        if not len(block):
            return
        # Round to nearest; clip instead of wrapping.  Processing stages own
        # limiting (see broadcaster.processing); this is the last safety net.
        # Full scale is 32768, as for the input (ffmpeg and sox do the same).
        # Bare ufuncs with out=: this runs on every block, and each call counts.
        scaled = np.multiply(block, np.float32(32768.0))
        np.rint(scaled, out=scaled)
        np.minimum(scaled, np.float32(32767.0), out=scaled)
        np.maximum(scaled, np.float32(-32768.0), out=scaled)
        self._out += scaled.astype("<i2").tobytes()

    def _take_chunks(self) -> list[bytes]:
        size = self.chunk_bytes
        count = len(self._out) // size
        if not count:
            return []
        chunks = [bytes(self._out[i * size : (i + 1) * size]) for i in range(count)]
        del self._out[: count * size]
        return chunks
