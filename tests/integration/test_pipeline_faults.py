"""The pipeline when the world misbehaves: PipeWire restarts, odd apps, hung servers."""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_pipeline import (
    SECOND,
    TARGET_HZ,
    fresh_audio,
    make_tone,
    start_broadcaster,
    stop_broadcaster,
    stops_cleanly,
    tone_in,
    wait_for_tone,
)
from tests.support.pipewire import PipeWireSession
from tests.support.procs import Proc, children, command_line, wait_until
from tests.support.signal import band_energy, rms, s16_stereo_to_float
from tests.support.snapserver import SnapClient, SnapServer

pytestmark = pytest.mark.integration


def queued(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD)."""
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


CAPTURE_SINK = "broadcaster.targetapp"


def run_against(session: PipeWireSession, server: SnapServer) -> list[str]:
    return ["run", "TargetApp", "--server", f"127.0.0.1:{server.control_port}"]


PYTHON_PATH = {"BROADCASTER_CAPTURE_NATIVE": "false"}
"""The Python data path (pw-record, the capture thread), which these tests are about."""


@contextlib.contextmanager
def target_broadcast(
    tmp_path: Path,
    session: PipeWireSession,
    one_room: tuple[SnapServer, SnapClient],
    extra_env: dict[str, str] | None = None,
) -> Iterator[Proc]:
    """TargetApp playing ``tmp_path/t.wav`` (a tone) and ``broadcaster run`` capturing it
    into the room's snapserver, once the room plays it; it must stop cleanly after."""
    server, room = one_room
    session.play(make_tone(tmp_path / "t.wav", TARGET_HZ, 48000), "TargetApp")
    broadcaster = start_broadcaster(session, *run_against(session, server), extra_env=extra_env)
    with stops_cleanly(broadcaster):
        wait_for_tone(room, TARGET_HZ)
        yield broadcaster


def test_pipewire_restart_brings_back_the_sink_and_the_routing(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    _, room = one_room
    with target_broadcast(tmp_path, pw_session, one_room) as broadcaster:
        # PipeWire, WirePlumber and pipewire-pulse restart; the app dies with them.
        pw_session.stop_daemons()
        pw_session.start_daemons()
        pw_session.add_speakers()
        wait_until(lambda: CAPTURE_SINK in pw_session.sinks(), 30, "the capture sink again")
        pw_session.play(tmp_path / "t.wav", "TargetApp")
        wait_until(
            lambda: pw_session.stream_sinks("TargetApp")[-1:] == [CAPTURE_SINK],
            20,
            "the app's new stream on the capture sink",
        )
        wait_for_tone(room, TARGET_HZ, timeout=30)
        assert broadcaster.alive(), broadcaster.log_tail()
    assert CAPTURE_SINK not in pw_session.sinks()


def test_several_streams_opened_at_once_all_move_and_stay(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    server, room = one_room
    wav = make_tone(tmp_path / "t.wav", TARGET_HZ, 44100)
    broadcaster = start_broadcaster(pw_session, *run_against(pw_session, server))
    with stops_cleanly(broadcaster):
        wait_until(lambda: CAPTURE_SINK in pw_session.sinks(), 15, "the capture sink")
        for _ in range(3):
            pw_session.play(wav, "TargetApp")
        everything_moved = [CAPTURE_SINK] * 3
        try:
            wait_until(
                lambda: pw_session.stream_sinks("TargetApp") == everything_moved,
                20,
                "all three streams on the capture sink",
            )
        except AssertionError as err:
            raise AssertionError(f"{err}: {pw_session.stream_sinks('TargetApp')}") from None
        # WirePlumber 0.4 may undo a fresh move when another stream starts right
        # after it: watch the streams for a while; broadcaster must put them back.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            wait_until(
                lambda: pw_session.stream_sinks("TargetApp") == everything_moved,
                5,
                "the streams to stay on the capture sink",
            )
        wait_for_tone(room, TARGET_HZ)
    wait_until(lambda: pw_session.stream_sinks("TargetApp") == ["speakers"] * 3, 10, "all restored")


def test_an_app_that_never_plays_sends_nothing_and_stops_cleanly(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    server, room = one_room
    broadcaster = start_broadcaster(pw_session, *run_against(pw_session, server))
    with stops_cleanly(broadcaster):
        wait_until(lambda: CAPTURE_SINK in pw_session.sinks(), 15, "the capture sink")
        wait_until(
            lambda: "waiting for 'TargetApp' to play" in broadcaster.log_path.read_text(),
            15,
            "broadcaster to say it waits",
        )
        assert not tone_in(fresh_audio(room, 1.0), TARGET_HZ)
        assert server.stream_status("Main") == "idle"
        assert recorder_pid(broadcaster.pid) == 0  # nothing recorded, nothing woken up
    assert CAPTURE_SINK not in pw_session.sinks()


def _null_sink_modules(session: PipeWireSession, name: str) -> list[str]:
    """Indexes of the loaded null-sink modules that make sink ``name``."""
    rows = session.pactl("list", "short", "modules").splitlines()
    return [
        row.split("\t")[0]
        for row in rows
        if "module-null-sink" in row and f"sink_name={name} " in row.replace("\t", " ") + " "
    ]


def _node_name(obj: dict[str, Any]) -> str:
    if obj.get("type") != "PipeWire:Interface:Node":
        return ""
    return str(obj["info"]["props"].get("node.name", ""))


def test_a_sink_left_by_a_crashed_run_is_replaced_not_doubled(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    # What an older version's crash left: a pulse null sink (ours die with broadcaster).
    pw_session.load_null_sink(CAPTURE_SINK)
    with target_broadcast(tmp_path, pw_session, one_room, PYTHON_PATH) as broadcaster:
        # The stale pulse sink is gone; one sink of that name is left, broadcaster's own.
        assert _null_sink_modules(pw_session, CAPTURE_SINK) == [], broadcaster.log_tail()
        named = [o for o in pw_session.dump() if _node_name(o) == CAPTURE_SINK]
        assert len(named) == 1, named
        assert "removing stale sink" in broadcaster.log_path.read_text()
    assert _null_sink_modules(pw_session, CAPTURE_SINK) == []
    wait_until(lambda: pw_session.stream_sinks("TargetApp") == ["speakers"], 10, "restored")


def test_a_hung_snapserver_costs_audio_not_the_capture(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    server, room = one_room
    with target_broadcast(tmp_path, pw_session, one_room) as broadcaster:
        fifo = server.fifo()
        watcher = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # only to look, never reads
        server.pause()  # SIGSTOP: the pipe stops draining
        try:
            most = 0
            deadline = time.monotonic() + 2  # watch the pipe while nobody drains it
            while time.monotonic() < deadline:
                most = max(most, queued(watcher))
                time.sleep(0.05)
            assert 0 < most <= 19200 + 3840  # ~100 ms, not a growing backlog
            assert broadcaster.alive(), broadcaster.log_tail()
        finally:
            server.resume()
            os.close(watcher)
        wait_for_tone(room, TARGET_HZ, timeout=10)
        assert broadcaster.alive(), broadcaster.log_tail()


def test_a_killed_recorder_is_restarted(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    _, room = one_room
    with target_broadcast(tmp_path, pw_session, one_room, PYTHON_PATH) as broadcaster:
        recorder = recorder_pid(broadcaster.pid)
        os.kill(recorder, signal.SIGKILL)
        wait_until(lambda: recorder_pid(broadcaster.pid) not in (0, recorder), 10, "a new one")
        wait_for_tone(room, TARGET_HZ)
    assert "pw-record stopped (status -9)" in broadcaster.log_path.read_text()


def recorder_pid(parent: int) -> int:
    """The pw-record child of ``parent`` (0 if none)."""
    found = [
        pid for pid in children(parent) if (command_line(pid) or [""])[0].endswith("pw-record")
    ]
    return found[0] if found else 0


def test_capture_pauses_while_the_app_is_idle_and_resumes(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    server, room = one_room
    wav = make_tone(tmp_path / "t.wav", TARGET_HZ, 48000)
    app = pw_session.play(wav, "TargetApp")
    broadcaster = start_broadcaster(
        pw_session,
        *run_against(pw_session, server),
        extra_env={"BROADCASTER_CAPTURE_IDLE_STOP": "0.5", **PYTHON_PATH},
    )
    with stops_cleanly(broadcaster):
        wait_for_tone(room, TARGET_HZ)
        assert recorder_pid(broadcaster.pid) != 0
        app.stop()
        wait_until(lambda: recorder_pid(broadcaster.pid) == 0, 10, "capture to pause")
        pw_session.play(wav, "TargetApp")
        wait_for_tone(room, TARGET_HZ)


class RoomCrashed(Exception):
    """The room's snapclient died of a signal (its own defect, not broadcaster's)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"snapclient died of signal {signum}")
        self.signum = signum


def _seconds_until_tone(room: SnapClient, since: int, start: float, timeout: float = 15) -> float:
    """Seconds from ``start`` until the room's newest 0.1 s (after byte ``since``) is the tone.

    The room (snapclient's file player) writes 50 ms blocks in real time, so
    the figure is good to about 0.1 s.
    """
    window = SECOND // 10

    def back() -> bool:
        if room.crash():
            raise RoomCrashed(room.crash())
        size = room.size()
        if size - since < window:
            return False
        samples = s16_stereo_to_float(room.read_from(size - window))[:, 0]
        return rms(samples) > 0.05 and band_energy(samples, 48000, TARGET_HZ) > 0.8

    try:
        wait_until(back, timeout, f"{room.host_id} to play again", interval=0.02)
    except AssertionError as err:
        raise AssertionError(f"{err} ({room.state()})") from None
    return time.monotonic() - start


def test_audio_is_back_soon_after_snapserver_returns(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    """How long the rooms are silent once snapserver is back: a figure per fault.

    Asserted: snapserver reads broadcaster's audio again within 2 s of its
    return (broadcaster's part: the held fifo is read at once, a re-created
    one is reopened within the 1 s inode check).  Reported, with a looser
    bound: when the room plays again, which adds snapclient's own reconnect
    cadence.  The figures go to ``recovery.json`` in the test's directory and
    to stdout (``pytest -s``).
    """
    server, room = one_room
    wav = make_tone(tmp_path / "t.wav", TARGET_HZ, 48000)
    pw_session.play(wav, "TargetApp")
    broadcaster = start_broadcaster(pw_session, *run_against(pw_session, server))
    fifo = server.fifo()
    figures: dict[str, dict[str, float]] = {}

    def measure(fault: str) -> None:
        returned = time.monotonic()
        since = room.size()
        wait_until(lambda: server.stream_status("Main") == "playing", 10, "snapserver to play")
        stream_s = time.monotonic() - returned
        figures[fault] = {"stream_playing_s": round(stream_s, 2)}
        try:
            room_s = _seconds_until_tone(room, since, returned)
        except RoomCrashed as crash:
            # snapclient 0.31 (Debian 13) sometimes segfaults when its server is
            # killed and restarted: the room is started again, as systemd would,
            # and timed from then on.  Broadcaster's part is stream_playing_s.
            figures[fault]["snapclient_crashed"] = crash.signum
            room.stop()
            room.start()
            restarted = time.monotonic()
            room_s = _seconds_until_tone(room, room.size(), restarted)
        figures[fault]["room_s"] = round(room_s, 2)
        assert stream_s <= 2.0, (fault, figures)
        # Measured 0.6-1.4 s (docs/reliability.md); the bound only catches a
        # regression, with room for a loaded CI machine.
        assert room_s <= 4.0, (fault, figures)
        assert broadcaster.alive(), broadcaster.log_tail()

    try:
        wait_for_tone(room, TARGET_HZ)
        server.pause()  # hung: SIGSTOP for 3 s
        time.sleep(3)
        server.resume()
        measure("hung 3 s (SIGSTOP/SIGCONT)")

        server.kill()  # killed, restarted on the same fifo
        server.start()
        measure("killed and restarted")

        server.stop()  # stopped, its fifo removed: the new one is another file
        fifo.unlink()
        server.start()
        measure("restarted with a new fifo")
    finally:
        code = stop_broadcaster(broadcaster)
        print("recovery " + json.dumps(figures))  # noqa: T201 - the figures are the point
        (tmp_path / "recovery.json").write_text(json.dumps(figures, indent=2))
    assert code == 0, broadcaster.log_tail()


def test_a_second_broadcaster_of_the_same_app_or_pipe_is_refused(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    """Two `broadcaster run` of one app fought over it (each moved it to its own
    sink of the same name every second) and wrote one pipe; the second one now
    says who has it and exits, and the first plays on undisturbed."""
    server, room = one_room
    wav = make_tone(tmp_path / "t.wav", TARGET_HZ, 48000)
    pw_session.play(wav, "TargetApp")
    first = start_broadcaster(pw_session, *run_against(pw_session, server))
    try:
        wait_for_tone(room, TARGET_HZ)
        fifo = str(server.fifo())
        moves = first.log_path.read_text().count(f"to {CAPTURE_SINK}")
        for argv, refusal in [
            (
                run_against(pw_session, server),
                f"'TargetApp' is already captured by pid {first.pid}",
            ),
            (["run", "OtherApp", "--pipe", fifo], f"{fifo} is already fed by pid {first.pid}"),
        ]:
            second = subprocess.run(
                [sys.executable, "-m", "broadcaster", *argv],
                env={k: v for k, v in pw_session.env.items() if not k.startswith("BROADCASTER_")},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert second.returncode == 1, second
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert lines[0].startswith("broadcaster: error: "), second.stderr
            assert refusal in lines[0]
        assert pw_session.stream_sinks("TargetApp") == [CAPTURE_SINK]
        assert first.log_path.read_text().count(f"to {CAPTURE_SINK}") == moves  # never taken away
        wait_for_tone(room, TARGET_HZ)
        assert first.alive(), first.log_tail()
    finally:
        code = stop_broadcaster(first)
    assert code == 0, first.log_tail()
