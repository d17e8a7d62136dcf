"""Announcements: the ducker's ramps and restores, preparing sounds, the queue."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from broadcaster.announce import (
    MAX_STEPS,
    TAIL_MS,
    AnnounceQueue,
    Ducker,
    announcements_on,
    capture_sinks,
    gain_of,
    prepare,
    ramp_steps,
)
from broadcaster.errors import AnnounceError, PipeWireError
from broadcaster.pipewire import AppStream, Graph, Sink
from broadcaster.sndfile import Sound, read_sound
from tests.support.signal import db, highband_peaks, tone


class Volumes:
    """Records every soft-volume step, as PipeWire would apply it."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, tuple[float, ...]]] = []
        self.gone: set[int] = set()

    async def set_soft_volumes(self, node_id: int, volumes: Sequence[float]) -> None:
        if node_id in self.gone:
            raise PipeWireError("pw-cli set-param failed: unknown global")
        self.steps.append((node_id, tuple(volumes)))

    def of(self, node: int) -> list[float]:
        return [v[0] for n, v in self.steps if n == node]


async def no_sleep(_: float) -> None:
    return None


def music(node: int, volume: float = 1.0) -> AppStream:
    return AppStream(node, node + 100, "spotify", app_name="spotify", volumes=(volume, volume))


async def ducked(
    volumes: Volumes, streams: list[AppStream], reason: str = "announcement", **options: Any
) -> Ducker:
    """A ducker over ``streams`` (its ramps not sleeping) once it has ducked them for ``reason``."""
    ducker = Ducker(volumes, sleep=no_sleep, **options)
    ducker.set_music(streams)
    ducker.set_reason(reason, True)
    await ducker.apply()
    return ducker


async def test_ducking_ramps_down_in_small_steps_and_restores_exactly() -> None:
    volumes = Volumes()
    ducker = await ducked(volumes, [music(1, 0.8)], duck_db=12, ramp_ms=250)
    down = volumes.of(1)
    assert len(down) == ramp_steps(250) == MAX_STEPS
    assert down == sorted(down, reverse=True)
    assert down[-1] == pytest.approx(0.8 * gain_of(12))
    # Equal jumps in amplitude: none larger than a twelfth of the way.
    assert max(a - b for a, b in zip([0.8, *down], down, strict=False)) <= 0.8 * 0.75 / 12 + 1e-9
    ducker.set_reason("announcement", False)
    await ducker.apply()
    up = volumes.of(1)[len(down) :]
    assert up == sorted(up)
    assert up[-1] == pytest.approx(0.8)  # the user's own volume, exactly
    assert (ducker.stats.ducks, ducker.stats.restores) == (1, 1)


async def test_a_volume_the_user_sets_meanwhile_is_kept() -> None:
    volumes = Volumes()
    ducker = await ducked(volumes, [music(1, 1.0)], duck_db=12, ramp_ms=0)
    assert volumes.of(1)[-1] == pytest.approx(gain_of(12))
    # The user turns the app down to 0.5 while the announcement plays: PipeWire
    # plays 0.5 in full, and the ducker ducks from there.
    ducker.set_music([music(1, 0.5)])
    await ducker.apply()
    assert volumes.of(1)[-1] == pytest.approx(0.5 * gain_of(12))
    ducker.set_reason("announcement", False)
    await ducker.apply()
    assert volumes.of(1)[-1] == pytest.approx(0.5)


async def test_a_stream_that_starts_during_an_announcement_is_ducked_too() -> None:
    volumes = Volumes()
    ducker = await ducked(volumes, [music(1)], "announcer", duck_db=6, ramp_ms=60)
    ducker.set_music([music(1), music(2)])
    await ducker.apply()
    assert volumes.of(2)[-1] == pytest.approx(gain_of(6))
    assert len(volumes.of(1)) == ramp_steps(60)  # the first one is left alone


async def test_a_stream_that_vanished_does_not_stop_the_others() -> None:
    volumes = Volumes()
    volumes.gone.add(1)
    await ducked(volumes, [music(1), music(2)], ramp_ms=0)
    assert volumes.of(2) == [pytest.approx(gain_of(12))]


async def test_release_brings_the_music_back_whatever_the_reasons() -> None:
    volumes = Volumes()
    ducker = await ducked(volumes, [music(1)], "announcer", ramp_ms=0)
    await ducker.release()
    assert volumes.of(1)[-1] == 1.0


async def test_run_settles_after_each_change() -> None:
    volumes = Volumes()
    ducker = Ducker(volumes, ramp_ms=0)
    task = asyncio.create_task(ducker.run())
    try:
        ducker.set_music([music(1)])
        ducker.set_reason("announcement", True)
        await asyncio.wait_for(ducker.settled.wait(), 5)
        assert volumes.of(1)[-1] == pytest.approx(gain_of(12))
    finally:
        task.cancel()


def test_ramp_steps_are_bounded() -> None:
    assert ramp_steps(0) == 1
    assert ramp_steps(20) == 1
    assert ramp_steps(45) == 2
    assert ramp_steps(5000) == MAX_STEPS


def test_announcements_are_found_on_their_sink_only() -> None:
    sinks = (Sink(10, 10, "broadcaster.spotify"), Sink(11, 11, "speakers"))
    ours = AppStream(20, 20, "pw-play", app_name="broadcaster-announce", sink_ids=(10,))
    elsewhere = AppStream(21, 21, "pw-play", app_name="broadcaster-announce", sink_ids=(11,))
    graph = Graph((ours, elsewhere, music(1)), sinks)
    assert announcements_on(graph, "broadcaster.spotify") == [ours]
    assert capture_sinks(graph) == ["broadcaster.spotify"]


def test_prepare_adds_a_silent_lead_and_fades_and_plays_mono_on_both_sides(
    tmp_path: Path,
) -> None:
    sound = Sound(24000, np.full((2400, 1), 0.5, np.float32))
    seconds = prepare(sound, tmp_path / "out.wav", lead_ms=100)
    assert seconds == pytest.approx(0.2 + TAIL_MS / 1000)
    with wave.open(str(tmp_path / "out.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 24000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").reshape(-1, 2)
    assert not pcm[:2400].any()  # the lead
    assert pcm[2400, 0] == 0  # the fades start and end at zero
    assert pcm[4799, 1] == 0
    assert not pcm[4800:].any()  # the tail
    assert (pcm[2400 + 1200] == 16384).all()


def test_a_file_that_is_not_sound_is_refused_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "notes.wav"
    junk.write_text("not a sound file")
    with pytest.raises(AnnounceError, match=r"cannot decode notes\.wav"):
        read_sound(junk, max_seconds=10)


def test_a_sound_longer_than_allowed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 8000 * 3)
    with pytest.raises(AnnounceError, match="lasts 3 s, longer than the 2 s"):
        read_sound(path, max_seconds=2)
    assert read_sound(path, max_seconds=5).seconds == pytest.approx(3)


async def test_announcements_queue_one_after_the_other(tmp_path: Path) -> None:
    queue = AnnounceQueue(tmp_path / "announce.lock", poll=0.01)
    order: list[str] = []

    async def one(name: str, hold: float) -> None:
        async with queue.turn():
            order.append(f"{name} starts")
            await asyncio.sleep(hold)
            order.append(f"{name} ends")

    first = asyncio.create_task(one("first", 0.1))
    await asyncio.sleep(0.02)
    await one("second", 0)
    await first
    assert order == ["first starts", "first ends", "second starts", "second ends"]


def test_the_click_detector_hears_an_unramped_duck_and_not_a_ramped_one() -> None:
    """The integration test's click measure can fail: a step in gain is a click."""
    rate = 48000
    music = tone(660, rate, 1.0)
    # The step at a crest of the tone (at a zero crossing a step is a kink, much quieter).
    step = music * np.where(np.arange(len(music)) < rate // 2 + 18, 1.0, 0.25)
    gains = np.ones(len(music))
    for i in range(1, 13):  # twelve steps 20 ms apart, as the Ducker makes
        gains[rate // 2 + i * 960 :] = 1 - 0.0625 * i
    ramped = music * gains
    threshold = db(0.5) - 12  # the ducked music's level
    assert db(float(highband_peaks(step, rate, 2500).max())) > threshold
    assert db(float(highband_peaks(ramped, rate, 2500)[5:-5].max())) < threshold


async def test_speech_without_espeak_ng_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broadcaster.announce import speak

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AnnounceError, match=r"apt-get install espeak-ng"):
        await speak("dinner is ready", tmp_path / "out.wav")


def test_the_command_refuses_a_file_it_cannot_decode_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from broadcaster.cli import main

    monkeypatch.setenv("BROADCASTER_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    junk = tmp_path / "doorbell.mp3"
    junk.write_bytes(b"\0" * 100)
    assert main(["announce", str(junk)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("broadcaster: error: cannot decode doorbell.mp3")
    assert "\n" not in err


async def test_one_capture_of_the_service_mixes_the_announcer_app_in() -> None:
    import dataclasses

    from broadcaster.config import AnnounceConfig
    from tests.unit.test_service import make_service, pipes_status

    service, made = make_service()
    service.config = dataclasses.replace(
        service.config, announce=AnnounceConfig(announcer="doorbell")
    )
    # The announcement stream is never a capture's slot.
    service.snap.status = pipes_status("broadcaster-announce", "Main", "Second")
    assert [slot.stream for slot in service.slots()] == ["Main", "Second"]
    first = await service.start_capture("spotify")
    second = await service.start_capture("firefox")
    # Two captures moving the same app onto their sinks would fight over it.
    assert [m.config.announce.announcer for m in made] == ["doorbell", ""]
    await service.stop_capture(first.id)
    third = await service.start_capture("mpv")
    assert made[-1].config.announce.announcer == "doorbell"
    assert (second.announcer, third.announcer) == ("", "doorbell")
    await service.stop()
