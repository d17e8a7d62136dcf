"""The Recorder's life cycle, with a stand-in for pw-record (a child that writes PCM).

The races here (a request arriving while the child is being started, a
consumer that hangs) cannot be provoked on demand with the real pw-record;
everything else about capture is in tests/integration/.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from dataclasses import replace

import pytest

from broadcaster.audio import SNAPCAST_FORMAT
from broadcaster.backoff import CAPTURE_RESTART
from broadcaster.capture import Recorder, record_command
from broadcaster.errors import CaptureError
from broadcaster.process import ChildProcess
from tests.support.procs import await_until, cancelled_on_exit

WRITES_THEN_WAITS = [
    sys.executable,
    "-c",
    "import os, time; os.write(1, bytes(4096)); time.sleep(30)",
]

SOON = replace(CAPTURE_RESTART, first=0.01)
"""pw-record restarted within a test's patience."""


def recorder() -> Recorder:
    rec = Recorder("sink", SNAPCAST_FORMAT, idle_stop=0.05, restart=SOON)
    rec._argv = WRITES_THEN_WAITS  # the stand-in for pw-record
    return rec


async def _true(value: bool) -> bool:
    return value


async def test_a_restart_asked_while_pw_record_starts_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = recorder()
    starts: list[ChildProcess] = []
    real_start = ChildProcess.start

    async def start_then_restart(self: ChildProcess) -> None:
        await real_start(self)
        starts.append(self)
        if len(starts) == 1:
            rec.restart()  # e.g. the sink came back: arrives before run() knows the child

    monkeypatch.setattr(ChildProcess, "start", start_then_restart)
    rec.set_wanted(True)
    async with cancelled_on_exit(asyncio.create_task(rec.run(lambda _b: None))):
        await await_until(lambda: _true(len(starts) >= 2), 5, "pw-record to be restarted")


async def test_a_new_run_starts_a_new_stream() -> None:
    rec = recorder()
    events: list[str] = []
    rec.set_wanted(True)
    task = asyncio.create_task(
        rec.run(lambda b: events.append(f"block {len(b)}"), on_start=lambda: events.append("start"))
    )
    async with cancelled_on_exit(task):
        await await_until(lambda: _true("block 4096" in events), 5, "a block")
        rec.restart()
        await await_until(lambda: _true(events.count("block 4096") >= 2), 5, "a second run")
    assert events[:2] == ["start", "block 4096"]
    assert events[events.index("block 4096", 2) - 1] == "start"


async def test_a_consumer_that_hangs_ends_the_run_with_a_clear_error() -> None:
    rec = recorder()
    release = threading.Event()
    rec.set_wanted(True)

    def stuck(_block: bytes) -> None:
        release.wait(10)

    task = asyncio.create_task(rec.run(stuck))
    try:
        await asyncio.sleep(0.5)  # the stand-in has written; the consumer is stuck in it
        rec.restart()  # pw-record goes, the thread does not come back
        with pytest.raises(CaptureError, match="did not stop within 2 s"):
            await asyncio.wait_for(task, 10)
    finally:
        release.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, CaptureError):
            await task


def test_pw_record_is_asked_for_headerless_pcm_where_pipewire_needs_it() -> None:
    """PipeWire 1.x writes an AU header on ``-`` unless ``--raw`` comes first."""
    plain = record_command("sink", SNAPCAST_FORMAT, 100)
    raw = record_command("sink", SNAPCAST_FORMAT, 100, stdio=("--raw",))
    assert plain[-1] == raw[-1] == "-"
    assert "--raw" not in plain
    assert raw[-2:] == ["--raw", "-"]
