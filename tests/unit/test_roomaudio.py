"""The soak's room check: a steady tone passes, every kind of gap is counted once."""

from __future__ import annotations

import numpy as np

from bench.roomaudio import RATE, ToneWatch

FREQ = 1013.0


def s16(left: np.ndarray) -> bytes:
    pcm = np.round(np.clip(left, -1, 1) * 32767).astype("<i2")
    return np.column_stack([pcm, pcm]).tobytes()


def tone(seconds: float, start: int = 0) -> np.ndarray:
    n = np.arange(start, start + int(seconds * RATE))
    return 0.5 * np.sin(2 * np.pi * FREQ * n / RATE)


def watch(audio: np.ndarray, chunk: int = 7777) -> ToneWatch:
    """Fed in odd-sized pieces, as a growing file is read."""
    raw = s16(audio)
    tw = ToneWatch(FREQ)
    for i in range(0, len(raw), chunk):
        tw.feed(raw[i : i + chunk])
    return tw


def test_a_steady_tone_after_silence_has_no_gap() -> None:
    tw = watch(np.concatenate([np.zeros(RATE // 2), tone(5)]))
    assert tw.windows_before == 50
    assert tw.gaps == []
    assert abs(tw.room_s - 5) < 0.011
    assert tw.tone_s == tw.room_s


def test_inserted_silence_is_one_gap() -> None:
    audio = np.concatenate([tone(3), np.zeros(960), tone(2, start=3 * RATE)])
    tw = watch(audio)
    assert len(tw.gaps) == 1
    assert abs(tw.gaps[0].at_s - 3) < 0.011
    assert tw.tone_s < tw.room_s


def test_dropped_audio_is_a_gap_whatever_its_length() -> None:
    for dropped in (2, 5, 480, 1024, 16000):
        audio = np.concatenate([tone(3), tone(2, start=3 * RATE + dropped)])
        assert len(watch(audio).gaps) == 1, dropped


def test_a_one_frame_slip_is_not_a_gap() -> None:
    audio = np.concatenate([tone(3), tone(2, start=3 * RATE + 1)])
    assert watch(audio).gaps == []


def test_a_dropped_whole_second_shows_in_the_phase_only_never() -> None:
    """1013 Hz: a whole second of the tone is whole cycles; the window seam still shows."""
    audio = np.concatenate([tone(3), tone(2, start=4 * RATE + 7)])
    assert len(watch(audio).gaps) == 1


def test_two_gaps_are_two() -> None:
    audio = np.concatenate(
        [tone(2), np.zeros(2000), tone(2, start=2 * RATE), tone(2, start=4 * RATE + 300)]
    )
    assert len(watch(audio).gaps) == 2


def test_a_quieter_room_is_not_a_gap() -> None:
    """The reference is what the room plays once settled, not the app's level."""
    tw = watch(0.3 * tone(4))
    assert tw.gaps == []


def test_audio_lost_or_added_moves_the_timeline() -> None:
    lost = watch(np.concatenate([tone(3), tone(2, start=3 * RATE + 1024)]))
    added = watch(np.concatenate([tone(3), np.zeros(960), tone(2, start=3 * RATE)]))
    for tw in (lost, added):
        assert len(tw.gaps) == 1
        assert tw.moved == tw.gaps
        assert tw.gaps[0].shift_rad > 1


def test_silence_played_in_place_of_the_tone_keeps_the_timeline() -> None:
    """What a late room does: silence for the audio it missed, then on where it should be."""
    audio = tone(5)
    audio[3 * RATE + 100 : 3 * RATE + 2500] = 0
    tw = watch(audio)
    assert len(tw.gaps) == 1
    assert tw.gaps[0].timeline_kept
    assert tw.gaps[0].shift_rad < 0.01
    assert tw.moved == []


def test_a_gap_that_has_not_ended_counts_as_moved() -> None:
    tw = watch(np.concatenate([tone(3), np.zeros(4800)]))
    assert len(tw.moved) == 1
