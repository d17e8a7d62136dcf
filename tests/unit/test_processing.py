"""The processing chain: speed with its live buffering policy, channels, gain, filter, limiter."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from broadcaster.audio import SNAPCAST_FORMAT, AudioFormat, Converter
from broadcaster.cli import build_parser
from broadcaster.config import ProcessingConfig, load
from broadcaster.errors import ConfigError
from broadcaster.processing import LIMIT_CEILING, Chain, build_processor, parse_gain
from tests.support.signal import dominant_frequency, rms, s16_stereo_to_float, tone

RATE = 48000
F32 = AudioFormat(RATE, 2, "f32")
BLOCK = RATE // 50  # 20 ms, as the live path delivers


def chain(**settings: object) -> Chain:
    built = build_processor(ProcessingConfig(**settings))  # type: ignore[arg-type]
    assert built is not None
    return built


def run_live(
    processor: Chain, left: np.ndarray, right: np.ndarray | None = None, block: int = BLOCK
) -> np.ndarray:
    """Push stereo float samples through a Converter in live-sized blocks; s16 out as floats."""
    stereo = np.stack([left, left if right is None else right], axis=1).astype("<f4")
    conv = Converter(F32, SNAPCAST_FORMAT, processor=processor)
    out: list[bytes] = []
    data = stereo.tobytes()
    step = block * F32.bytes_per_frame
    for start in range(0, len(data), step):
        out.append(conv.push(data[start : start + step]))
    return s16_stereo_to_float(b"".join(out))


def test_nothing_asked_means_no_chain() -> None:
    assert build_processor(ProcessingConfig()) is None


@pytest.mark.parametrize(
    ("text", "db"), [("-3dB", -3.0), ("+6 dB", 6.0), ("-3", -3.0), ("2.5DB", 2.5), (".5", 0.5)]
)
def test_gain_spellings(text: str, db: float) -> None:
    assert parse_gain(text) == db


@pytest.mark.parametrize("text", ["", "loud", "-3 dBFS", "3dB3", "--3"])
def test_bad_gain_is_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match="decibels"):
        parse_gain(text)


def test_cli_takes_negative_gain_in_db_and_every_flag() -> None:
    args = build_parser().parse_args(
        ["run", "app", "--gain", "-3dB", "--speed", "1.1", "--speed-policy", "pad", "--mono"]
    )
    assert (args.gain, args.speed, args.speed_policy, args.mono) == (-3.0, 1.1, "pad", True)
    assert args.swap is None  # not given: the config file's value stands


def test_config_section_file_env_and_ranges(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[processing]\nspeed = 1.1\ngain_db = -3\nspeed_policy = "pad"\n')
    config = load(file, env={"BROADCASTER_PROCESSING_MONO": "yes"})
    assert config.processing == ProcessingConfig(
        speed=1.1, gain_db=-3.0, speed_policy="pad", mono=True
    )
    for bad, message in [
        ("speed = 4", "processing.speed"),
        ('speed_policy = "drop"', "speed_policy"),
        ("prebuffer_s = 0", "prebuffer_s"),
        ("gain_db = 40", "gain_db"),
        ('filter = "no colon"', "module:function"),
    ]:
        file.write_text(f"[processing]\n{bad}\n")
        with pytest.raises(ConfigError, match=message):
            load(file, env={})


def test_gain_in_db() -> None:
    out = run_live(chain(gain_db=-6.0), tone(1000, RATE, 1.0, 0.5))
    assert rms(out[2400:, 0]) == pytest.approx(0.5 / np.sqrt(2) / 1.9953, rel=0.01)


def test_mono_and_swap() -> None:
    left, right = tone(1000, RATE, 0.5, 0.5), np.zeros(RATE // 2)
    mono = run_live(chain(mono=True), left, right)
    assert np.array_equal(mono[:, 0], mono[:, 1])
    assert rms(mono[:, 0]) == pytest.approx(rms(left) / 2, rel=0.01)
    swapped = run_live(chain(swap=True), left, right)
    assert rms(swapped[:, 0]) < 1e-4
    assert rms(swapped[:, 1]) == pytest.approx(rms(left), rel=0.01)


def test_limiter_keeps_loud_audio_under_full_scale_without_wrapping() -> None:
    processor = chain(gain_db=12.0)  # a 0.5 sine would peak at 2.0
    src = tone(440, RATE, 2.0, 0.5)
    blocks = [processor(b.astype(np.float32)) for b in np.split(np.stack([src, src], 1), 100)]
    assert max(float(np.max(np.abs(b))) for b in blocks) <= LIMIT_CEILING
    out = run_live(chain(gain_db=12.0), src)
    # Wrapping would flip signs; limiting keeps the waveform (scaled), and loud.
    loud = np.abs(src[: len(out)]) > 0.1
    assert np.all(np.sign(out[loud, 0]) == np.sign(src[: len(out)][loud]))
    assert rms(out[RATE:, 0]) > 0.6
    assert processor.stats.limited_blocks > 0


def test_limiter_leaves_quiet_audio_alone() -> None:
    processor = chain(gain_db=-1.0)
    run_live(processor, tone(440, RATE, 1.0, 0.5))
    assert processor.stats.limited_blocks == 0


def test_speed_raises_pitch_and_keeps_the_real_time_clock_with_prebuffer() -> None:
    speed, prebuffer, seconds = 1.25, 0.5, 7.0
    processor = chain(speed=speed, prebuffer_s=prebuffer)
    out = run_live(processor, tone(400, RATE, seconds, 0.5))
    # Exactly as much audio leaves as came in: the rooms' clock is the source's.
    assert abs(len(out) - seconds * RATE) <= BLOCK
    level = np.array([rms(out[i : i + BLOCK, 0]) for i in range(0, len(out) - BLOCK, BLOCK)])
    playing = level > 0.1
    # Silence while the prebuffer fills (prebuffer x speed of source time) ...
    first = int(np.argmax(playing)) * BLOCK / RATE
    assert first == pytest.approx(prebuffer * speed, abs=0.05)
    # ... then music for prebuffer / (1 - 1/speed) seconds, then a refill.
    run = int(np.argmin(playing[int(np.argmax(playing)) :])) * BLOCK / RATE
    assert run == pytest.approx(prebuffer / (1 - 1 / speed), abs=0.1)
    music = out[int((first + 0.1) * RATE) : int((first + run - 0.1) * RATE), 0]
    assert dominant_frequency(music, RATE) == pytest.approx(400 * speed, abs=1.0)
    stats = processor.stats
    assert stats.underruns >= 2
    # Overall, 1 - 1/speed of the time is silence: speed cannot be had for free.
    assert stats.silence_ms / 1000 == pytest.approx(seconds * (1 - 1 / speed), abs=0.6)


def test_speed_pad_policy_plays_at_once_and_pads_the_shortfall() -> None:
    processor = chain(speed=1.1, speed_policy="pad")
    seconds = 3.0
    out = run_live(processor, tone(400, RATE, seconds, 0.5))
    assert rms(out[: RATE // 10, 0]) > 0.1  # no prebuffer
    assert processor.stats.silence_ms / 1000 == pytest.approx(seconds * (1 - 1 / 1.1), abs=0.05)
    assert processor.stats.underruns > 10


def test_slower_than_live_skips_instead_of_growing_without_bound() -> None:
    processor = chain(speed=0.5, prebuffer_s=0.5)
    run_live(processor, tone(400, RATE, 8.0, 0.5))
    stats = processor.stats
    assert stats.skipped_ms > 0
    assert stats.buffered_ms <= 0.5 * 1000 + 1000 + 20  # never beyond its capacity


@pytest.fixture
def filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "userfilters.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            calls = []

            def invert(block):
                calls.append(block.shape)
                return -block

            def explode(block):
                if len(calls) > 2:
                    raise RuntimeError("boom")
                calls.append(1)
                return block

            def wrong_shape(block):
                return block[:, 0]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("userfilters", None)


def test_user_filter_sees_live_blocks(filters: Path) -> None:
    src = tone(1000, RATE, 0.5, 0.5)
    out = run_live(chain(filter="userfilters:invert"), src)
    assert np.corrcoef(out[:, 0], src[: len(out)])[0, 1] < -0.99
    import userfilters  # type: ignore[import-not-found]

    assert userfilters.calls[-1] == (BLOCK, 2)


def test_failing_filter_is_counted_and_audio_goes_on(filters: Path) -> None:
    processor = chain(filter="userfilters:explode")
    out = run_live(processor, tone(1000, RATE, 0.5, 0.5))
    assert rms(out[:, 0]) > 0.3
    assert processor.stats.filter_errors > 10


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:f", "cannot import"),
        ("userfilters:missing", "has no function"),
        ("userfilters:wrong_shape", "frames x 2"),
    ],
)
def test_unusable_filter_is_refused_at_start(filters: Path, spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_processor(ProcessingConfig(filter=spec))
