"""The whole pipeline with real parts: PipeWire, apps, snapserver, two rooms.

A target app plays 440 Hz and another app 1000 Hz on the default sink.
``broadcaster run`` (the real CLI, as a child process) must put the target's
tone, and only it, into both rooms; keep following the app when it restarts;
keep delivering across a snapserver restart; and leave everything as it found
it when stopped.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pipewire import PipeWireSession
from tests.support.procs import Proc, cli_env, free_ports, port_open, wait_until
from tests.support.signal import band_energy, rms, s16_stereo_to_float
from tests.support.snapserver import EmbeddedPorts, House, SnapClient, SnapServer, StreamSpec

pytestmark = pytest.mark.integration

TARGET_HZ = 440.0
OTHER_HZ = 1000.0
SECOND = 48000 * 4  # bytes of 48 kHz S16LE stereo


def make_tone(path: Path, freq: float, rate: int, seconds: int = 300) -> Path:
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            str(rate),
            "-c",
            "2",
            "-b",
            "16",
            str(path),
            "synth",
            str(seconds),
            "sine",
            str(freq),
            "vol",
            "0.5",
        ],
        check=True,
    )
    return path


def tone_in(data: bytes, freq: float) -> bool:
    """The last half second of ``data`` is mostly ``freq`` (not silence, not the other tone)."""
    samples = s16_stereo_to_float(data[-SECOND // 2 :])
    if len(samples) < 12000:
        return False
    left = samples[:, 0]
    return rms(left) > 0.05 and band_energy(left, 48000, freq) > 0.9


def fresh_audio(room: SnapClient, seconds: float = 0.6) -> bytes:
    """Audio a room wrote from now on, once there is ``seconds`` of it."""
    start = room.size()
    wait_until(lambda: room.size() - start >= seconds * SECOND, 20, f"{room.host_id} to play")
    return room.read_from(start)


def wait_for_tone(room: SnapClient, freq: float, timeout: float = 20) -> bytes:
    """Wait until the room plays ``freq``; return that audio."""
    heard: list[bytes] = []

    def playing() -> bool:
        audio = fresh_audio(room, 0.6)
        heard.append(audio)
        return tone_in(audio, freq)

    wait_until(playing, timeout, f"{room.host_id} to play {freq:g} Hz")
    return heard[-1]


def start_broadcaster(
    session: PipeWireSession, *args: str, extra_env: dict[str, str] | None = None
) -> Proc:
    """The real CLI as a child process, inside the private PipeWire session."""
    return Proc(
        [sys.executable, "-m", "broadcaster", "-vv", *args],
        session.logs / "broadcaster.log",
        cli_env(session.env, PYTHONUNBUFFERED="1", **(extra_env or {})),
    )


def stop_broadcaster(
    broadcaster: Proc, timeout: float = 15, sig: signal.Signals = signal.SIGTERM, lines: int = 150
) -> int:
    """SIGTERM (or ``sig``), as systemd or Ctrl-C would; return the exit status."""
    broadcaster.signal(sig)
    try:
        code = broadcaster.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        # What is it waiting for?  SIGUSR1 logs every task's and thread's stack.
        broadcaster.signal(signal.SIGUSR1)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: "end of state dump" in broadcaster.log_path.read_text(), 5, "dump")
        broadcaster.kill()
        raise AssertionError(
            f"broadcaster did not stop on {sig.name}:\n{broadcaster.log_tail(lines)}"
        ) from None
    broadcaster.stop()
    return code


@contextlib.contextmanager
def stops_cleanly(broadcaster: Proc) -> Iterator[Proc]:
    """On leaving the block, ``broadcaster`` must stop on SIGTERM with status 0."""
    try:
        yield broadcaster
    finally:
        code = stop_broadcaster(broadcaster)
    assert code == 0, broadcaster.log_tail()


def test_one_app_plays_in_every_room_and_everything_is_restored(
    tmp_path: Path,
    pw_session: PipeWireSession,
    house: House,
) -> None:
    target_wav = make_tone(tmp_path / "target.wav", TARGET_HZ, 44100)
    other_wav = make_tone(tmp_path / "other.wav", OTHER_HZ, 48000)
    pw_session.play(other_wav, "OtherApp")
    target = pw_session.play_on_speakers(target_wav, "TargetApp")
    wait_until(lambda: pw_session.stream_sinks("OtherApp") == ["speakers"], 10, "other playing")

    broadcaster = start_broadcaster(
        pw_session, "run", "TargetApp", "--server", f"127.0.0.1:{house.server.control_port}"
    )
    with stops_cleanly(broadcaster):
        wait_until(
            lambda: pw_session.stream_sinks("TargetApp") == ["broadcaster.targetapp"],
            15,
            "the target to be moved to the capture sink",
        )
        # Both rooms play the target's tone, not the other app's.
        for room in house.rooms:
            audio = wait_for_tone(room, TARGET_HZ)
            assert band_energy(s16_stereo_to_float(audio)[:, 0], 48000, OTHER_HZ) < 0.01
        # The other app still plays where it was.
        assert pw_session.stream_sinks("OtherApp") == ["speakers"]
        # An app that starts now (same media.role "Music" as the target) is not
        # sent to the capture sink by WirePlumber's memory of our moves.
        late = pw_session.play_on_speakers(other_wav, "LateApp")
        late.stop()

        # The app restarts (a new stream): it is followed and capture resumes.
        target.stop()
        wait_until(lambda: pw_session.stream_sinks("TargetApp") == [], 10, "the target to stop")
        wait_until(lambda: not tone_in(fresh_audio(house.room), TARGET_HZ), 10, "rooms to go quiet")
        pw_session.play(target_wav, "TargetApp")
        wait_until(
            lambda: pw_session.stream_sinks("TargetApp") == ["broadcaster.targetapp"],
            15,
            "the restarted target to be moved",
        )
        for room in house.rooms:
            wait_for_tone(room, TARGET_HZ)

        # snapserver is killed and restarted: audio comes back, broadcaster untouched.
        house.server.kill()
        house.server.start()
        for room in house.rooms:
            wait_for_tone(room, TARGET_HZ, timeout=30)
        assert broadcaster.alive(), broadcaster.log_tail()
        # SIGUSR1 logs what every task and thread does, and stops nothing.
        broadcaster.signal(signal.SIGUSR1)
        wait_until(
            lambda: "end of state dump" in broadcaster.log_path.read_text(), 10, "the state dump"
        )
        dump = broadcaster.log_path.read_text()
        # The native path: no capture thread, PipeWire writes the fifo.
        assert "data path: native" in dump, dump
        assert "task pipe-sink" in dump, dump
        assert "thread capture" not in dump, dump
        assert broadcaster.alive()
    # Routing restored, virtual sink gone, other app untouched.
    wait_until(
        lambda: pw_session.stream_sinks("TargetApp") == ["speakers"],
        10,
        "the target to be restored",
    )
    assert "broadcaster.targetapp" not in pw_session.sinks()
    assert pw_session.stream_sinks("OtherApp") == ["speakers"]
    assert "Traceback" not in broadcaster.log_path.read_text()


def test_with_no_snapserver_anywhere_run_starts_its_own(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> None:
    """The main job on a fresh machine: no server configured or answering."""
    ports = EmbeddedPorts.free()
    target_wav = make_tone(tmp_path / "target.wav", TARGET_HZ, 48000)
    pw_session.play(target_wav, "TargetApp")
    runtime = Path(pw_session.env["XDG_RUNTIME_DIR"])
    broadcaster = start_broadcaster(
        pw_session,
        "run",
        "TargetApp",
        extra_env=ports.env(),
    )
    room = None
    try:
        wait_until(
            lambda: port_open(ports.control) or not broadcaster.alive(), 20, "embedded snapserver"
        )
        assert broadcaster.alive(), broadcaster.log_tail()
        assert (runtime / "broadcaster" / "snapfifo").exists()
        # The stream's now-playing controlscript is told which app it plays.
        now_playing = runtime / "broadcaster" / "now-playing" / "broadcaster.json"
        wait_until(now_playing.exists, 10, "the now-playing target")
        assert json.loads(now_playing.read_text())["app"] == "TargetApp"
        room = SnapClient.for_port(ports.stream, "kitchen", tmp_path / "kitchen.raw")
        room.start()
        wait_for_tone(room, TARGET_HZ, timeout=30)
    finally:
        if room is not None:
            room.stop()
        code = stop_broadcaster(broadcaster)
    assert code == 0, broadcaster.log_tail()
    wait_until(lambda: not port_open(ports.control), 10, "the embedded snapserver to stop")
    assert json.loads(now_playing.read_text()) == {}  # nothing captured any more
    assert "Traceback" not in broadcaster.log_path.read_text()


def test_by_pid_onto_an_existing_sink_over_tcp(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> None:
    """--pid, --sink (an existing sink, as the snd-aloop one would be) and --tcp together.

    Capture is asked for 44.1 kHz f32 here, so the live path goes through the
    soxr converter instead of letting PipeWire deliver the target format.
    """
    tcp_port = free_ports(1)[0]
    server = SnapServer(tmp_path / "snap", [StreamSpec("Net", tcp_port=tcp_port)])
    server.start()
    room = SnapClient(server, "study", tmp_path / "study.raw")
    pw_session.load_null_sink("aloop")
    app = pw_session.play(make_tone(tmp_path / "t.wav", TARGET_HZ, 22050), "SomeApp")
    other = pw_session.play(make_tone(tmp_path / "o.wav", OTHER_HZ, 48000), "OtherApp")
    wait_until(lambda: pw_session.stream_sinks("SomeApp") == ["speakers"], 10, "app playing")
    broadcaster = start_broadcaster(
        pw_session,
        "run",
        "--pid",
        str(app.pid),
        "--sink",
        "aloop",
        "--tcp",
        f"tcp://127.0.0.1:{tcp_port}",
        extra_env={"BROADCASTER_CAPTURE_FORMAT": "44100:f32:2"},
    )
    try:
        room.start()
        wait_until(lambda: pw_session.stream_sinks("SomeApp") == ["aloop"], 15, "app on aloop")
        wait_for_tone(room, TARGET_HZ, timeout=30)
        assert pw_session.stream_sinks("OtherApp") == ["speakers"]
    finally:
        code = stop_broadcaster(broadcaster)
        room.stop()
        server.stop()
        other.stop()
    assert code == 0, broadcaster.log_tail()
    wait_until(lambda: pw_session.stream_sinks("SomeApp") == ["speakers"], 10, "app restored")
    assert "aloop" in pw_session.sinks()  # an existing sink is not ours to remove
