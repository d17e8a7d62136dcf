"""Format conversion: any rate/format/channel count -> 48 kHz S16LE stereo."""

from __future__ import annotations

import numpy as np
import pytest

from broadcaster.audio import SNAPCAST_FORMAT, AudioFormat, Converter, downmix_matrix
from broadcaster.errors import AudioFormatError
from tests.support.signal import dominant_frequency, rms, s16_stereo_to_float, tone


def encode(samples: np.ndarray, sample: str) -> bytes:
    """frames x channels float64 -> interleaved bytes of ``sample`` encoding."""
    if sample == "f32":
        return samples.astype("<f4").tobytes()
    full = 32767 if sample == "s16" else 2147483647
    dtype = "<i2" if sample == "s16" else "<i4"
    return np.round(samples * full).astype(dtype).tobytes()


def convert_in_blocks(conv: Converter, data: bytes, block: int) -> bytes:
    out = []
    for start in range(0, len(data), block):
        out.append(conv.push(data[start : start + block]))
    out.append(conv.flush())
    assert all(len(part) % 4 == 0 for part in out)  # whole s16 stereo frames
    return b"".join(out)


@pytest.mark.parametrize(
    ("fmt", "layout_gain"),
    [
        (AudioFormat(44100, 2, "f32"), 1.0),
        (AudioFormat(22050, 1, "s16"), 1.0),
        (AudioFormat(96000, 6, "s32"), 1.0),
        (AudioFormat(48000, 2, "s16"), 1.0),
        (AudioFormat(32000, 8, "f32"), 1.0),
    ],
)
def test_tone_frequency_and_level_survive(fmt: AudioFormat, layout_gain: float) -> None:
    freq, amplitude, seconds = 1000.0, 0.5, 1.0
    mono = tone(freq, fmt.rate, seconds, amplitude)
    # The same tone on every channel (LFE included): level must be preserved.
    samples = np.repeat(mono[:, None], fmt.channels, axis=1)
    data = encode(samples, fmt.sample)
    # Odd block sizes: partial frames must be carried over between pushes.
    out = convert_in_blocks(Converter(fmt), data, block=fmt.bytes_per_frame * 441 + 3)
    result = s16_stereo_to_float(out)
    expected_frames = int(seconds * 48000)
    assert abs(len(result) - expected_frames) <= 2
    steady = result[4800:-4800]
    for channel in (0, 1):
        assert dominant_frequency(steady[:, channel], 48000) == pytest.approx(freq, abs=1.0)
        assert rms(steady[:, channel]) == pytest.approx(
            layout_gain * amplitude / np.sqrt(2), rel=0.02
        )


def test_passthrough_hands_on_whole_frames_without_touching_bytes() -> None:
    conv = Converter(SNAPCAST_FORMAT)
    assert conv.passthrough
    data = bytes(range(256)) * 100
    first = conv.push(data[:1001])  # a partial frame waits for the rest
    assert first == data[:1000]
    assert conv.push(data[1001:4096]) == data[1000:4096]  # completed, nothing left over
    block = data[4096:8192]
    assert conv.push(block) is block  # aligned: the very same bytes, no copy
    assert conv.flush() == b""


def test_reset_drops_a_partial_frame_of_the_previous_stream() -> None:
    conv = Converter(SNAPCAST_FORMAT)
    frame = bytes([1, 2, 3, 4])
    assert conv.push(frame + frame[:2]) == frame  # half a frame waits
    conv.reset()  # pw-record restarted: a new stream
    assert conv.push(frame) == frame  # not the stale half in front (channels swapped)


def test_resampler_latency_is_small_and_stream_is_continuous() -> None:
    fmt = AudioFormat(44100, 2, "f32")
    conv = Converter(fmt)
    block = fmt.bytes_in(20)  # 882 frames
    mono = tone(440, 44100, 2.0)
    data = encode(np.stack([mono, mono], axis=1), "f32")
    produced = 0
    for i, start in enumerate(range(0, len(data), block)):
        produced += len(conv.push(data[start : start + block])) // 4
        # After the first blocks, output keeps pace with input: it never lags
        # more than the resampler's own delay (~21 ms for soxr HQ) behind.
        if i > 3:
            due = (i + 1) * 960
            assert due - produced <= 48000 * 0.025
    out = s16_stereo_to_float(conv.flush())
    assert len(out) <= 48000 * 0.025  # what was held back is the resampler's delay


def test_clipping_is_clamped_not_wrapped() -> None:
    fmt = AudioFormat(48000, 2, "f32")
    loud = np.full((960, 2), 1.7)
    loud[::2] = -1.7
    out = s16_stereo_to_float(Converter(fmt).push(encode(loud, "f32")))
    assert out.max() == pytest.approx(32767 / 32768)
    assert out.min() == -1.0
    assert np.all(np.abs(out) > 0.99)


def test_downmix_rows_sum_to_one_and_drop_lfe() -> None:
    matrix = downmix_matrix(6)
    assert matrix.sum(axis=0) == pytest.approx([1.0, 1.0])
    assert matrix[3].tolist() == [0.0, 0.0]  # LFE
    assert downmix_matrix(1).tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("44100:f32:2", AudioFormat(44100, 2, "f32")),
        ("48000:16:2", AudioFormat(48000, 2, "s16")),
        (" 96000 : s32 : 6 ", AudioFormat(96000, 6, "s32")),
    ],
)
def test_parse_format(text: str, expected: AudioFormat) -> None:
    assert AudioFormat.parse(text) == expected


@pytest.mark.parametrize("text", ["44100", "44100:u8:2", "0:s16:2", "48000:s16:0", "a:b:c"])
def test_parse_format_rejects(text: str) -> None:
    with pytest.raises(AudioFormatError):
        AudioFormat.parse(text)
