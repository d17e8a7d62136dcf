"""Announcements over the music, heard in the rooms' output.

The music app plays 660 Hz, an announcement 1000 Hz.  Read from what the
rooms (real snapclients) play: before, the music at level L; during, the
announcement at full level and the music at L - 12 dB; after, the music back
at L within a second; and no click at either ramp.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.integration.test_pipeline import (
    SECOND,
    fresh_audio,
    make_tone,
    start_broadcaster,
    stop_broadcaster,
    stops_cleanly,
    wait_for_tone,
)
from tests.support.pipewire import PipeWireSession
from tests.support.procs import Proc, cli_child, cli_env, port_open, wait_until
from tests.support.signal import db, highband_peaks, s16_stereo_to_float, tone_amplitudes
from tests.support.snapserver import EmbeddedPorts, House, SnapClient, SnapServer, snap_house

pytestmark = pytest.mark.integration
_LOGGER = logging.getLogger(__name__)

MUSIC_HZ = 660.0
ANNOUNCE_HZ = 1000.0
AMPLITUDE = 0.5  # both tones, as sox writes them (vol 0.5)
WINDOW_S = 0.02
CLICK_CUTOFF_HZ = 2500.0


@dataclass(frozen=True)
class Heard:
    """What a room played around one announcement (levels in dB re full scale amplitude)."""

    music_before: float
    music_during: float
    announcement: float
    music_after: float
    back_after_s: float
    """From the announcement's end until the music is within 1 dB of its level before."""
    ducked_before_s: float
    """How long before the announcement's first sound the music was already down 1 dB."""
    ramp_s: float
    """From the music 1 dB down to 11 dB down."""
    worst_click: float
    """The loudest thing above 2.5 kHz around the ramps (neither tone has any)."""
    onset_s: float
    """Where the announcement starts in the audio analysed (a second before the command)."""


def _first(condition: np.ndarray, start: int, hold: int) -> int:
    """The first index from ``start`` where ``condition`` holds for ``hold`` windows
    (one exception allowed: a load glitch in the rooms is a window of silence)."""
    for i in range(start, len(condition) - hold):
        if condition[i] and condition[i : i + hold].sum() >= hold - 1:
            return i
    return len(condition)


def _near_gaps(samples: np.ndarray, window: int, count: int) -> np.ndarray:
    """Windows holding, or next to, a run of 1 ms or more of digital silence."""
    silent = np.abs(samples[: count * window]) < 1e-4
    runs = np.convolve(silent, np.ones(48), mode="same") >= 47.5
    gappy = runs.reshape(count, window).any(axis=1)
    return gappy | np.roll(gappy, 1) | np.roll(gappy, -1)


def _longest_silence(samples: np.ndarray) -> float:
    """The longest run of digital silence, in seconds."""
    silent = np.concatenate([[False], np.abs(samples) < 1e-4, [False]])
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    runs = edges[1::2] - edges[::2]
    return float(runs.max()) / 48000 if len(runs) else 0.0


def analyse(audio: bytes) -> Heard:
    left = s16_stereo_to_float(audio)[:, 0]
    window = int(48000 * WINDOW_S)
    amps = tone_amplitudes(left, 48000, (MUSIC_HZ, ANNOUNCE_HZ), window)
    music, ann = amps[:, 0], amps[:, 1]
    on = np.flatnonzero(ann > AMPLITUDE / 2)
    assert len(on) > 0, "the announcement was never heard"
    first, last = int(on[0]), int(on[-1])
    assert first > 60, "the audio analysed starts too late"
    before = float(np.median(music[: first - 50]))
    one_db_down = before * 10 ** (-1 / 20)
    duck_start = _first(music < one_db_down, first - 50, 5)
    ramp_end = _first(music < before * 10 ** (-11 / 20), duck_start, 5)
    up_start = _first(music > before * 10 ** (-11 / 20), last + 1, 5)
    back = _first(music >= one_db_down, last + 1, 10)
    after = float(np.median(music[back + 10 : back + 40])) if back + 40 < len(music) else 0.0
    # Clicks are looked for where the ramps are (the rest is the rooms' business),
    # leaving out the edges of gaps: a room that ran dry on a loaded machine
    # plays silence, which is not the ramp's doing.
    peaks = highband_peaks(left, 48000, CLICK_CUTOFF_HZ, window // 2)
    peaks[_near_gaps(left, window // 2, len(peaks))] = 0.0
    ramps = np.concatenate(
        [peaks[2 * duck_start - 5 : 2 * ramp_end + 5], peaks[2 * up_start - 5 : 2 * back + 5]]
    )
    middle = slice(first + 10, last - 10)
    return Heard(
        music_before=db(before),
        music_during=db(float(np.median(music[middle]))),
        announcement=db(float(np.median(ann[middle]))),
        music_after=db(after),
        back_after_s=(back - last) * WINDOW_S,
        ducked_before_s=(first - duck_start) * WINDOW_S,
        ramp_s=(ramp_end - duck_start) * WINDOW_S,
        worst_click=db(float(ramps.max())) if len(ramps) else -200.0,
        onset_s=first * WINDOW_S,
    )


def run_cli(
    session: PipeWireSession, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *args],
        env=cli_env(session.env, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def music_playing(
    tmp_path: Path,
    pw_session: PipeWireSession,
    server: SnapServer,
    *args: str,
    path: str = "native",
    heard_in: SnapClient | None = None,
) -> Iterator[Proc]:
    """The music app playing 660 Hz, and ``broadcaster run`` capturing it into ``server``
    (once ``heard_in`` plays it); on exit broadcaster must stop cleanly on SIGTERM.

    ``path``: the data path, native (PipeWire writes the fifo) or python.
    """
    music = make_tone(tmp_path / "music.wav", MUSIC_HZ, 48000)
    pw_session.play(music, "MusicApp")
    broadcaster = start_broadcaster(
        pw_session,
        *("run", "MusicApp", *args, "--server", f"127.0.0.1:{server.control_port}"),
        extra_env={"BROADCASTER_CAPTURE_NATIVE": str(path == "native").lower()},
    )
    with stops_cleanly(broadcaster):
        if heard_in is not None:
            wait_for_tone(heard_in, MUSIC_HZ)
        yield broadcaster


def log_of(broadcaster: Proc) -> str:
    return broadcaster.log_path.read_text()


@dataclass(frozen=True)
class MusicInRoom:
    """The music playing in ``room`` through ``broadcaster`` (``broadcaster run`` on the
    native path) in ``session``; files go to ``tmp_path``."""

    broadcaster: Proc
    room: SnapClient
    session: PipeWireSession
    tmp_path: Path

    @contextlib.contextmanager
    def announcing_bell(self, seconds: int) -> Iterator[subprocess.Popen[str]]:
        """``broadcaster announce`` of a bell ``seconds`` long running, once broadcaster
        has ducked the music for it (killed on exit if still running)."""
        bell = make_tone(self.tmp_path / "bell.wav", ANNOUNCE_HZ, 48000, seconds=seconds)
        with cli_child(self.session.env, "announce", str(bell)) as command:
            wait_until(lambda: "ducking the music" in log_of(self.broadcaster), 20, "the duck")
            yield command

    def wait_restored(self, timeout: float) -> None:
        """Wait until broadcaster says it brings the music back up."""
        wait_until(
            lambda: "restoring the music" in log_of(self.broadcaster), timeout, "the restore"
        )


@pytest.fixture
def music_in_room1(
    tmp_path: Path,
    pw_session: PipeWireSession,
    house: House,
) -> Iterator[MusicInRoom]:
    """The music playing in room1."""
    with music_playing(tmp_path, pw_session, house.server, heard_in=house.room) as broadcaster:
        yield MusicInRoom(broadcaster, house.room, pw_session, tmp_path)


def music_db(audio: bytes) -> float:
    """The music's median level in ``audio`` (left channel), in dB."""
    level = tone_amplitudes(s16_stereo_to_float(audio)[:, 0], 48000, (MUSIC_HZ,))[:, 0]
    return db(float(np.median(level)))


def audio_since(room: SnapClient, offset: int, seconds_after: float, before: int) -> bytes:
    """The room's output from ``offset``, once ``seconds_after`` more has been written."""
    wait_until(
        lambda: room.size() >= before + seconds_after * SECOND, 20, f"{room.host_id} to play on"
    )
    return room.read_from(offset)


@pytest.mark.parametrize("path", ["native", "python"])
def test_an_announcement_ducks_the_music_in_every_room_and_it_comes_back(
    tmp_path: Path,
    pw_session: PipeWireSession,
    house: House,
    path: str,
) -> None:
    bell = make_tone(tmp_path / "bell.wav", ANNOUNCE_HZ, 48000, seconds=2)
    with music_playing(tmp_path, pw_session, house.server, path=path) as broadcaster:
        wait_until(
            lambda: f"data path: {path}" in broadcaster.log_path.read_text().lower(),
            15,
            "the data path",
        )
        for room in house.rooms:
            wait_for_tone(room, MUSIC_HZ)
            fresh_audio(room, 1.2)
        # A second of music before the command, to measure the music's level L on.
        offsets = [room.size() - SECOND for room in house.rooms]
        result = run_cli(pw_session, "-v", "announce", str(bell))
        assert result.returncode == 0, result.stderr
        ends = [room.size() for room in house.rooms]
        audio = [
            audio_since(room, offset, 2.5, end)
            for room, offset, end in zip(house.rooms, offsets, ends, strict=True)
        ]
        for room, heard_there in zip(house.rooms, audio, strict=True):
            (tmp_path / f"heard-{room.host_id}.raw").write_bytes(heard_there)  # for a failure
        heard = [analyse(a) for a in audio]
        _LOGGER.info("announce figures: %s", heard)
        for h in heard:
            assert h.music_before == pytest.approx(db(AMPLITUDE), abs=1)
            assert h.announcement == pytest.approx(db(AMPLITUDE), abs=1)
            assert h.music_during == pytest.approx(h.music_before - 12, abs=1)
            assert h.music_after == pytest.approx(h.music_before, abs=1)
            assert h.back_after_s <= 1.0
            # No click: nothing above 2.5 kHz as loud as even the ducked music.
            assert h.worst_click < h.music_before - 12, h
        assert broadcaster.alive(), broadcaster.log_tail()


def faded_tone(path: Path, freq: float, seconds: float) -> Path:
    """A tone with 10 ms fades, as a doorbell program's sound would have."""
    subprocess.run(
        [
            *("sox", "-n", "-r", "48000", "-c", "2", "-b", "16", str(path)),
            *("synth", str(seconds), "sine", str(freq), "vol", str(AMPLITUDE)),
            *("fade", "0.01", str(seconds), "0.01"),
        ],
        check=True,
    )
    return path


def test_an_announcer_app_ducks_the_music_each_time_it_plays(
    tmp_path: Path,
    pw_session: PipeWireSession,
    house: House,
) -> None:
    bell = faded_tone(tmp_path / "bell.wav", ANNOUNCE_HZ, 2.0)
    with music_playing(
        tmp_path, pw_session, house.server, "--announcer", "DoorBell", heard_in=house.room
    ):
        fresh_audio(house.room, 1.2)  # a second of steady music to measure L on
        heard = []
        for _ in range(2):
            offset = house.room.size() - SECOND
            ring = pw_session.play(bell, "DoorBell")
            assert ring.popen.wait(20) == 0
            end = house.room.size()
            heard.append(analyse(audio_since(house.room, offset, 2.5, end)))
        _LOGGER.info("announcer figures: %s", heard)
        for h in heard:
            assert h.announcement == pytest.approx(db(AMPLITUDE), abs=1)
            assert h.music_during == pytest.approx(h.music_before - 12, abs=1)
            assert h.music_after == pytest.approx(h.music_before, abs=1)
            assert h.back_after_s <= 1.0
        # (Clicks are not looked for: the app starts on its own sink and is moved
        # onto the capture sink while it plays, so its sound starts abruptly.)
        # The doorbell's streams are gone; nothing of it is left on the capture sink.
        assert pw_session.stream_sinks("DoorBell") == []


@pytest.fixture
def two_streams(tmp_path: Path, pw_session: PipeWireSession, snap_tools: None) -> Iterator[House]:
    """A snapserver with the music's stream and the announcement stream, and two rooms."""
    with snap_house(tmp_path, "Main", "broadcaster-announce") as both:
        yield both


def heard_only_in_the_chosen_room(chosen: bytes, other: bytes) -> np.ndarray:
    """Assert that the chosen room's audio holds the announcement, and that the other
    room's never does and its music never dips (gaps of a loaded machine aside);
    return the other room's left channel."""
    amps = tone_amplitudes(s16_stereo_to_float(chosen)[:, 0], 48000, (MUSIC_HZ, ANNOUNCE_HZ))
    assert amps[:, 1].max() > AMPLITUDE / 10
    left = s16_stereo_to_float(other)[:, 0]
    amps = tone_amplitudes(left, 48000, (MUSIC_HZ, ANNOUNCE_HZ))
    gaps = _near_gaps(left, 960, len(amps))
    assert amps[~gaps, 1].max() < AMPLITUDE / 100
    assert db(float(amps[~gaps, 0].min())) > db(AMPLITUDE) - 1
    return left


def _grouping(server: SnapServer) -> list[tuple[str, str, bool, tuple[tuple[str, int, bool], ...]]]:
    """Each group's name, stream, mute and rooms (id, volume, mute), in a stable order."""
    return sorted(
        (
            g["name"],
            g["stream_id"],
            g["muted"],
            tuple(
                sorted(
                    (c["id"], c["config"]["volume"]["percent"], c["config"]["volume"]["muted"])
                    for c in g["clients"]
                )
            ),
        )
        for g in server.status()["groups"]
    )


def test_an_announcement_in_one_room_leaves_the_other_undisturbed(
    tmp_path: Path,
    pw_session: PipeWireSession,
    two_streams: House,
) -> None:
    room1, room2 = two_streams.rooms
    # Both rooms in one named group on the music's stream, with volumes of their own.
    group = next(g for g in two_streams.server.status()["groups"] if "room1" in str(g["clients"]))
    two_streams.server.rpc("Group.SetClients", {"id": group["id"], "clients": ["room1", "room2"]})
    two_streams.server.rpc("Group.SetName", {"id": group["id"], "name": "downstairs"})
    two_streams.server.rpc(
        "Client.SetVolume", {"id": "room1", "volume": {"percent": 40, "muted": False}}
    )
    two_streams.server.rpc(
        "Client.SetVolume", {"id": "room2", "volume": {"percent": 100, "muted": False}}
    )
    before = _grouping(two_streams.server)

    bell = make_tone(tmp_path / "bell.wav", ANNOUNCE_HZ, 44100, seconds=2)
    with music_playing(tmp_path, pw_session, two_streams.server) as broadcaster:
        for room in (room1, room2):
            wait_for_tone(room, MUSIC_HZ)
        offsets = [room1.size(), room2.size()]
        result = run_cli(
            pw_session,
            "-v",
            "announce",
            str(bell),
            "--rooms",
            "room1",
            "--server",
            f"127.0.0.1:{two_streams.server.control_port}",
        )
        assert result.returncode == 0, result.stderr
        # The chosen room is back in its group, on its stream, at its volume and mute.
        assert _grouping(two_streams.server) == before
        ends = [room1.size(), room2.size()]
        chosen = audio_since(room1, offsets[0], 1.0, ends[0])
        other = audio_since(room2, offsets[1], 1.0, ends[1])
        (tmp_path / "heard-room1.raw").write_bytes(chosen)
        (tmp_path / "heard-room2.raw").write_bytes(other)
        # room1 heard the announcement (its volume 40 % is applied by snapclient).
        left = heard_only_in_the_chosen_room(chosen, other)
        # A group change around it would silence room2 for a few hundred ms: no
        # silence longer than the short gaps a loaded machine makes.
        assert _longest_silence(left) < 0.1
        assert broadcaster.alive(), broadcaster.log_tail()


def test_a_snapserver_that_vanishes_mid_announcement_is_told_in_one_line(
    tmp_path: Path,
    pw_session: PipeWireSession,
    two_streams: House,
) -> None:
    before = _grouping(two_streams.server)
    bell = make_tone(tmp_path / "bell.wav", ANNOUNCE_HZ, 48000, seconds=10)
    with cli_child(
        pw_session.env,
        *("announce", str(bell), "--rooms", "room1"),
        *("--server", f"127.0.0.1:{two_streams.server.control_port}"),
        stdout=subprocess.PIPE,
    ) as command:
        wait_until(lambda: _grouping(two_streams.server) != before, 20, "room1 to leave its group")
        two_streams.server.kill()
        _, err = command.communicate(timeout=30)
    assert command.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "broadcaster scene restore before-announcement" in lines[0]
    scenes = Path(pw_session.env["XDG_STATE_HOME"]) / "broadcaster" / "scenes.json"
    assert "before-announcement" in scenes.read_text()


def test_spoken_text_is_said_over_the_ducked_music(
    pw_session: PipeWireSession,
    music_in_room1: MusicInRoom,
) -> None:
    room = music_in_room1.room
    offset = room.size()
    result = run_cli(pw_session, "announce", "--say", "Dinner is ready in the kitchen")
    assert result.returncode == 0, result.stderr
    audio = audio_since(room, offset, 1.5, room.size())
    left = s16_stereo_to_float(audio)[:, 0]
    music_level = tone_amplitudes(left, 48000, (MUSIC_HZ,))[:, 0]
    windows = left[: len(music_level) * 960].reshape(-1, 960)
    ducked = music_level < AMPLITUDE * 10 ** (-11 / 20)
    # The music went 12 dB down for a while, and something was said meanwhile.
    assert ducked.sum() * WINDOW_S > 0.5
    speech = np.sqrt(np.mean(np.square(windows[ducked]), axis=1))
    assert db(float(speech.max())) > db(AMPLITUDE) - 20
    assert db(float(np.median(music_level[-20:]))) == pytest.approx(db(AMPLITUDE), abs=1)


def test_a_volume_the_user_sets_during_an_announcement_is_kept(
    pw_session: PipeWireSession,
    music_in_room1: MusicInRoom,
) -> None:
    with music_in_room1.announcing_bell(3) as command:
        # The user turns the music app down to half (-6 dB) meanwhile.
        (index,) = [
            line.split()[0]
            for line in pw_session.pactl("list", "short", "sink-inputs").splitlines()
            if line.split()[0] in _music_inputs(pw_session)
        ]
        pw_session.pactl("set-sink-input-volume", index, "0.5")
        assert command.wait(30) == 0, command.stderr.read() if command.stderr else ""
    music_in_room1.wait_restored(20)
    fresh_audio(music_in_room1.room, 1.0)  # past the ramp
    # Kept: half the music's level, not what it was before the announcement.
    assert music_db(fresh_audio(music_in_room1.room, 1.0)) == pytest.approx(
        db(AMPLITUDE) - 6, abs=1
    )


def _music_inputs(session: PipeWireSession) -> set[str]:
    """The pulse indices (object serials) of MusicApp's streams."""
    return {
        str(o["info"]["props"].get("object.serial"))
        for o in session.dump()
        if o.get("type") == "PipeWire:Interface:Node"
        and o["info"]["props"].get("application.name") == "MusicApp"
        and o["info"]["props"].get("media.class") == "Stream/Output/Audio"
    }


def test_a_killed_announce_command_brings_the_music_back(
    pw_session: PipeWireSession,
    music_in_room1: MusicInRoom,
) -> None:
    with music_in_room1.announcing_bell(20) as command:
        command.kill()
    # Its pw-play dies with it: the announcement stops and the music comes back.
    music_in_room1.wait_restored(5)
    wait_until(lambda: pw_session.stream_sinks("broadcaster-announce") == [], 5, "no pw-play")
    wait_for_tone(music_in_room1.room, MUSIC_HZ)
    assert music_db(fresh_audio(music_in_room1.room, 0.5)) == pytest.approx(db(AMPLITUDE), abs=1)


def test_a_newcomers_run_announces_in_one_room_on_its_own_snapserver(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> None:
    """`broadcaster run APP` with nothing configured, then `announce --rooms`: no
    `source =` line to add, the other room undisturbed, the chosen one put back."""
    ports = EmbeddedPorts.free()
    pw_session.play(make_tone(tmp_path / "music.wav", MUSIC_HZ, 48000), "MusicApp")
    broadcaster = start_broadcaster(pw_session, "run", "MusicApp", extra_env=ports.env())
    rooms = [
        SnapClient.for_port(ports.stream, f"room{i}", tmp_path / f"room{i}.raw") for i in (1, 2)
    ]
    # The test's own view of broadcaster's snapserver (not started by the harness).
    view = SnapServer(tmp_path / "view", [])
    view.control_port = ports.control
    try:
        wait_until(
            lambda: port_open(ports.control) or not broadcaster.alive(), 20, "embedded snapserver"
        )
        assert broadcaster.alive(), broadcaster.log_tail()
        for room in rooms:
            room.start()
        wait_until(lambda: len(view.clients()) == 2, 15, "both rooms to connect")
        # The idle announcement stream changes nothing the rooms play by default:
        # both are on the music's stream, and hear it.
        streams = {s["id"]: s["status"] for s in view.status()["streams"]}
        assert streams["broadcaster-announce"] == "idle"
        (music,) = set(streams) - {"broadcaster-announce"}
        assert {g["stream_id"] for g in view.status()["groups"]} == {music}
        for room in rooms:
            wait_for_tone(room, MUSIC_HZ, timeout=30)
        view.rpc("Client.SetVolume", {"id": "room1", "volume": {"percent": 40, "muted": False}})
        before = _grouping(view)

        bell = make_tone(tmp_path / "bell.wav", ANNOUNCE_HZ, 44100, seconds=2)
        offsets = [room.size() for room in rooms]
        result = run_cli(pw_session, "announce", str(bell), "--rooms", "room1", env=ports.env())
        assert result.returncode == 0, result.stderr
        assert _grouping(view) == before
        ends = [room.size() for room in rooms]
        chosen = audio_since(rooms[0], offsets[0], 1.0, ends[0])
        other = audio_since(rooms[1], offsets[1], 1.0, ends[1])
        heard_only_in_the_chosen_room(chosen, other)
        # room1 plays the music again.
        wait_for_tone(rooms[0], MUSIC_HZ)
        assert broadcaster.alive(), broadcaster.log_tail()
    finally:
        for room in rooms:
            room.stop()
        assert stop_broadcaster(broadcaster) == 0
