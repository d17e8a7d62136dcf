"""Format conversion: any rate/format/channel count -> 48 kHz S16LE stereo."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from broadcaster.audio import SNAPCAST_FORMAT, AudioFormat, Converter, downmix_matrix
from broadcaster.errors import AudioFormatError
from broadcaster.resample import FloatResampler, direct_available
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
        (AudioFormat(44100, 2, "s16"), 1.0),
        (AudioFormat(88200, 2, "s32"), 1.0),
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


def _held_back_frames(conv: Converter, seconds: float = 2.0) -> tuple[list[int], bytes]:
    """Push 20 ms blocks of a 44.1 kHz tone; after each, the 48 kHz frames due but not out."""
    fmt = AudioFormat(44100, 2, "f32")
    block = fmt.bytes_in(20)  # 882 frames in, 960 due out
    mono = tone(440, 44100, seconds)
    data = encode(np.stack([mono, mono], axis=1), "f32")
    produced, held = 0, []
    for i, start in enumerate(range(0, len(data), block)):
        produced += len(conv.push(data[start : start + block])) // 4
        held.append((i + 1) * 960 - produced)
    return held, conv.flush()


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "float"])
def test_resampling_holds_back_less_than_one_block(direct: bool) -> None:
    """A block's last sample leaves with the next block at the latest (bench: p99 ~20 ms).

    soxr's linear-phase HQ filter held back up to 1001 frames, more than the
    960 a 20 ms block brings, so some samples waited two blocks (p99 41 ms).
    """
    conv = Converter(AudioFormat(44100, 2, "f32"), direct=direct)
    assert conv.path == ("direct" if direct else "float")
    held, tail = _held_back_frames(conv)
    assert max(held[3:]) < 960
    assert 0 < len(tail) // 4 < 960  # what was held at the end comes out on flush


def test_libsoxr_is_installed_for_the_direct_path() -> None:
    # bootstrap.sh installs libsoxr0; without it stereo resampling still works
    # (float path) at about twice the CPU: this says so instead of hiding it.
    assert direct_available()
    assert Converter(AudioFormat(44100, 2, "s16")).path == "direct"
    assert Converter(AudioFormat(44100, 1, "s16")).path == "float"  # downmix first
    assert Converter(AudioFormat(48000, 2, "s16")).path == "passthrough"


@pytest.mark.parametrize("sample", ["f32", "s16", "s32"])
def test_direct_and_float_paths_give_the_same_audio(sample: str) -> None:
    fmt = AudioFormat(44100, 2, sample)  # type: ignore[arg-type]
    mono = tone(997, 44100, 1.0, 0.5)
    data = encode(np.stack([mono, -mono], axis=1), sample)
    direct = convert_in_blocks(Converter(fmt), data, block=fmt.bytes_in(20))
    floats = convert_in_blocks(Converter(fmt, direct=False), data, block=fmt.bytes_in(20))
    a = np.frombuffer(direct, "<i2").astype(int)
    b = np.frombuffer(floats, "<i2").astype(int)
    assert len(a) == len(b)
    assert np.abs(a - b).max() <= 1  # rounding of the last bit at most


def test_direct_path_clips_instead_of_wrapping() -> None:
    fmt = AudioFormat(44100, 2, "f32")
    mono = tone(100, 44100, 0.5, 1.7)  # overdriven: 1.7x full scale
    data = encode(np.stack([mono, mono], axis=1), "f32")
    out = np.frombuffer(convert_in_blocks(Converter(fmt), data, 3528), "<i2").astype(int)
    assert out.max() == 32767
    assert out.min() == -32768
    # Clipped, not wrapped: no jump from one rail to the other between samples.
    assert np.abs(np.diff(out.reshape(-1, 2)[:, 0])).max() < 2000


def test_resampler_uses_soxr_minimum_phase_with_the_installed_python_soxr() -> None:
    # python-soxr reaches libsoxr's phase option only through its extension type;
    # a release that changes it falls back to linear phase: this says so at once.
    assert FloatResampler(44100, 48000).minimum_phase


def test_resampler_falls_back_to_linear_phase_when_soxr_ext_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from soxr import soxr_ext

    original = soxr_ext.CSoxr

    def changed(*args: object) -> object:  # a release that takes quality names only
        if args[4] not in (soxr.QQ, soxr.LQ, soxr.MQ, soxr.HQ, soxr.VHQ):
            raise TypeError("incompatible constructor arguments")
        return original(*args)

    monkeypatch.setattr(soxr_ext, "CSoxr", changed)
    assert not FloatResampler(44100, 48000).minimum_phase
    held, _ = _held_back_frames(Converter(AudioFormat(44100, 2, "f32"), direct=False))
    assert max(held[3:]) < 48000 * 0.025  # still streams, with soxr's linear-phase delay


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


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "float"])
def test_reset_starts_the_resampler_afresh(direct: bool) -> None:
    fmt = AudioFormat(44100, 2, "s16")
    mono = tone(440, 44100, 0.5, 0.5)
    data = encode(np.stack([mono, mono], axis=1), "s16")
    fresh = convert_in_blocks(Converter(fmt, direct=direct), data, fmt.bytes_in(20))
    used = Converter(fmt, direct=direct)
    used.push(encode(np.stack([-mono, mono], axis=1), "s16"))  # a previous stream
    used.reset()  # pw-record restarted
    assert convert_in_blocks(used, data, fmt.bytes_in(20)) == fresh
