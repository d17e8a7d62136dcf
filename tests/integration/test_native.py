"""The native data path (PipeWire writes snapserver's fifo) when things go wrong.

The happy path (two rooms hear the app, a second app is not heard, snapserver
killed and restarted) is ``test_pipeline.py``'s first test, which runs on the
native path by default.  Here: broadcaster SIGKILLed (on both paths) or
stopped with Ctrl-C, a long time with no reader, the fifo replaced on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from broadcaster.config import Config, DeliveryConfig
from broadcaster.native import NativeStats
from broadcaster.pipeline import Broadcast
from broadcaster.pipewire import TargetApp
from tests.integration.test_pipeline import (
    OTHER_HZ,
    SECOND,
    TARGET_HZ,
    make_tone,
    start_broadcaster,
    stop_broadcaster,
    stops_cleanly,
    wait_for_tone,
)
from tests.integration.test_pipeline_faults import (
    CAPTURE_SINK,
    PYTHON_PATH,
    queued,
    run_against,
)
from tests.support.pipewire import PipeWireSession
from tests.support.procs import Proc, await_until, children, command_line, wait_until
from tests.support.snapserver import SnapClient, SnapServer

pytestmark = pytest.mark.integration


def sink_hosts(parent: int, program: str = "pipewire") -> list[int]:
    """The children of ``parent`` holding its capture sink: ``pipewire -c``
    (native path) or ``pw-cli`` (the Python path's null sink)."""
    return [pid for pid in children(parent) if command_line(pid)[:1] == [program]]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] != "Z"


def start_native(
    tmp_path: Path,
    session: PipeWireSession,
    one_room: tuple[SnapServer, SnapClient],
    *,
    python: bool = False,
    rate: int = 48000,
) -> tuple[Proc, int]:
    """TargetApp playing a tone (at ``rate``) and broadcaster on the native (or Python)
    path, once the app is moved and the room plays it: broadcaster and its sink's holder."""
    server, room = one_room
    session.play(make_tone(tmp_path / "t.wav", TARGET_HZ, rate), "TargetApp")
    env = PYTHON_PATH if python else {}
    broadcaster = start_broadcaster(session, *run_against(session, server), extra_env=env)
    wait_until(lambda: session.stream_sinks("TargetApp") == [CAPTURE_SINK], 15, "the move")
    log = broadcaster.log_path.read_text()
    assert ("data path: Python" if python else "data path: native") in log
    hosts = sink_hosts(broadcaster.pid, "pw-cli" if python else "pipewire")
    assert len(hosts) == 1, hosts
    wait_for_tone(room, TARGET_HZ)
    return broadcaster, hosts[0]


@contextlib.contextmanager
def native_running(
    tmp_path: Path, session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> Iterator[tuple[Proc, int]]:
    """:func:`start_native` on the native path; on leaving the block broadcaster must
    stop on SIGTERM with status 0."""
    broadcaster, host = start_native(tmp_path, session, one_room)
    with stops_cleanly(broadcaster):
        yield broadcaster, host


@pytest.mark.parametrize("python", [False, True], ids=["native", "python"])
def test_a_killed_broadcaster_gives_the_app_back_within_a_second(
    tmp_path: Path,
    pw_session: PipeWireSession,
    one_room: tuple[SnapServer, SnapClient],
    python: bool,
) -> None:
    broadcaster, host = start_native(tmp_path, pw_session, one_room, python=python, rate=44100)
    killed = time.monotonic()
    broadcaster.kill()  # SIGKILL: no chance to restore anything
    wait_until(
        lambda: pw_session.stream_sinks("TargetApp") == ["speakers"],
        5,
        "the app back on the speakers",
        interval=0.02,
    )
    back = time.monotonic() - killed
    print(f"\napp back on the speakers {back:.3f} s after SIGKILL")  # noqa: T201 - a figure
    assert back <= 1.0
    assert CAPTURE_SINK not in pw_session.sinks()
    wait_until(lambda: not alive(host), 2, "the sink's PipeWire client to be gone")


def test_ctrl_c_puts_the_app_back_and_leaves_nothing(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    broadcaster, host = start_native(tmp_path, pw_session, one_room)
    broadcaster.signal(signal.SIGINT)
    assert broadcaster.popen.wait(15) == 0, broadcaster.log_tail()
    broadcaster.stop()
    assert pw_session.stream_sinks("TargetApp") == ["speakers"]
    assert CAPTURE_SINK not in pw_session.sinks()
    assert not alive(host)
    assert not list(Path(pw_session.env["XDG_RUNTIME_DIR"]).glob("broadcaster-sink-*"))
    assert "Traceback" not in broadcaster.log_path.read_text()


def speakers_seconds(session: PipeWireSession, seconds: float) -> float:
    """Seconds of audio the speakers' monitor delivers in ``seconds`` of recording."""
    argv = ["pw-record", "--target", "speakers", "-P", "stream.capture.sink=true",
            "--rate", "48000", "--channels", "2", "--format", "s16", "-"]  # fmt: skip
    record = subprocess.Popen(
        argv,
        env=session.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # linked and running
        assert record.stdout is not None
        os.set_blocking(record.stdout.fileno(), False)
        while record.stdout.read(65536):
            pass
        start = time.monotonic()
        got = 0
        while time.monotonic() - start < seconds:
            time.sleep(0.1)
            got += len(record.stdout.read(1 << 20) or b"")
        return got / SECOND / (time.monotonic() - start)
    finally:
        record.kill()
        record.wait()


def test_no_reader_for_ten_seconds_blocks_nothing_and_leaves_no_backlog(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    server, room = one_room
    pw_session.play(make_tone(tmp_path / "o.wav", OTHER_HZ, 48000), "OtherApp")
    with native_running(tmp_path, pw_session, one_room) as (broadcaster, _):
        server.kill()  # nobody reads the fifo now
        fifo = server.fifo()
        started = time.monotonic()
        # Another app on the speakers plays on at full rate meanwhile.
        assert speakers_seconds(pw_session, 3.0) > 0.9
        time.sleep(max(0.0, 10 - (time.monotonic() - started)))
        assert broadcaster.alive(), broadcaster.log_tail()
        assert pw_session.stream_sinks("TargetApp") == [CAPTURE_SINK]
        # A reader that comes now finds at most what the shrunk pipe holds.
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            backlog = queued(reader)
        finally:
            os.close(reader)
        print(f"\nbacklog after 10 s without a reader: {backlog} bytes")  # noqa: T201
        assert backlog <= SECOND
        server.start()
        wait_for_tone(room, TARGET_HZ, timeout=30)


def test_a_replaced_fifo_gets_a_new_sink_without_the_app_leaking(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    """What a restarted snapserver in ``mode=create`` may do: a new fifo at the path."""
    server, room = one_room
    with native_running(tmp_path, pw_session, one_room) as (broadcaster, _):
        server.kill()
        fifo = server.fifo()
        fifo.unlink()
        server.start()  # makes a new fifo
        seen: set[str] = set()

        def moved() -> bool:
            sinks = pw_session.stream_sinks("TargetApp")
            seen.update(sinks)
            return sinks == [CAPTURE_SINK + ".b"]

        # Each look is a pw-dump: slow on a loaded machine, so a deadline, not a count.
        wait_until(moved, 30, "the app on the new fifo's sink", interval=0.02)
        # Linked to the old sink, the new one or both; or, caught mid-move, to none
        # for an instant ("": silence, not a leak). Never to the speakers.
        linked = {name for sinks in seen for name in sinks.split(",") if name}
        assert linked <= {CAPTURE_SINK, CAPTURE_SINK + ".b"}, seen
        wait_for_tone(room, TARGET_HZ, timeout=30)
        assert CAPTURE_SINK not in pw_session.sinks()
        hosts = sink_hosts(broadcaster.pid)
        assert len(hosts) == 1
        # Started again after that, the sink keeps its new name (the Router's target).
        os.kill(hosts[0], signal.SIGKILL)
        wait_until(lambda: sink_hosts(broadcaster.pid) not in ([], hosts), 10, "a new client")
        wait_until(
            lambda: pw_session.stream_sinks("TargetApp") == [CAPTURE_SINK + ".b"], 10, "moved"
        )
        wait_for_tone(room, TARGET_HZ)
    assert pw_session.stream_sinks("TargetApp") == ["speakers"]


def test_a_killed_sink_client_is_started_again(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    _, room = one_room
    with native_running(tmp_path, pw_session, one_room) as (broadcaster, host):
        os.kill(host, signal.SIGKILL)
        wait_until(lambda: sink_hosts(broadcaster.pid) not in ([], [host]), 10, "a new client")
        wait_until(lambda: pw_session.stream_sinks("TargetApp") == [CAPTURE_SINK], 10, "moved")
        wait_for_tone(room, TARGET_HZ)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("python", [False, True], ids=["native", "python"])
def test_a_signal_after_pipewire_died_still_stops_broadcaster(
    tmp_path: Path,
    pw_session: PipeWireSession,
    one_room: tuple[SnapServer, SnapClient],
    python: bool,
    sig: signal.Signals,
) -> None:
    """PipeWire killed mid-run (no restart): broadcaster retries, and a signal still ends it."""
    broadcaster, host = start_native(tmp_path, pw_session, one_room, python=python)
    before = broadcaster.log_path.stat().st_size
    pw_session.procs.pop("pipewire").kill()

    def noticed() -> bool:
        with broadcaster.log_path.open("rb") as log:
            log.seek(before)
            return b"failed" in log.read()

    wait_until(noticed, 20, "broadcaster to find PipeWire gone")
    code = stop_broadcaster(broadcaster, 20, sig, lines=200)  # fails if it ignores sig
    assert code == 0, broadcaster.log_tail()
    assert "Traceback" not in broadcaster.log_path.read_text(), broadcaster.log_tail()
    wait_until(lambda: not alive(host), 5, "the sink's holder to be gone with broadcaster")


async def test_the_native_figures_follow_snapserver_reading_or_not(
    tmp_path: Path, pw_session: PipeWireSession, one_room: tuple[SnapServer, SnapClient]
) -> None:
    """What ``GET /api/captures`` shows under ``native``: reader present, gone, back."""
    server, room = one_room
    pw_session.play(make_tone(tmp_path / "t.wav", TARGET_HZ, 48000), "TargetApp")
    fifo = server.fifo()
    broadcast = Broadcast(
        TargetApp("TargetApp"), Config(delivery=DeliveryConfig(pipe=str(fifo))), env=pw_session.env
    )
    stop = asyncio.Event()
    task = asyncio.create_task(broadcast.run(stop))

    def figures(want: Callable[[NativeStats], bool]) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            if task.done():
                task.result()  # a failed run says why
            stats = broadcast.status.native
            return stats is not None and want(stats)

        return check

    try:
        await await_until(
            figures(lambda s: s.sink_state == "running" and s.pipe_capacity > 0),
            15,
            "the sink running",
        )
        stats = broadcast.status.native
        assert stats is not None
        assert stats.reading
        assert stats.stalled_seconds == 0
        assert stats.pipe_bytes < stats.pipe_capacity
        await asyncio.to_thread(wait_for_tone, room, TARGET_HZ)
        server.kill()  # nobody reads the fifo now
        full = figures(lambda s: not s.reading and s.stalled_seconds >= 2)
        await await_until(full, 15, "the fifo full, seconds counted")
        assert stats.pipe_capacity - stats.pipe_bytes < 4096
        server.start()
        await await_until(figures(lambda s: s.reading), 15, "snapserver reading again")
        stalled = stats.stalled_seconds
        await asyncio.to_thread(wait_for_tone, room, TARGET_HZ, 30)
        assert stats.reading
        assert stats.stalled_seconds == stalled
        assert (stats.swaps, stats.restarts) == (0, 0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
