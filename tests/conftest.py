"""Shared fixtures: real PipeWire sessions and snapservers, torn down after each test."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support import netns, pipewire, snapserver
from tests.support.procs import (
    become_subreaper,
    command_line,
    descendants,
    reap_zombies,
    running,
)

LOG_TAIL_LINES = 25
#: How long processes may take to exit after the last test before the run fails.
LEFTOVER_DEADLINE_S = 10.0


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Fail the run if any process it started outlives it.

    The test process becomes a child subreaper, so a process whose parent died
    (an orphaned snapclient, controlscript, Chromium helper, ...) is re-parented
    to it rather than to init, and is still found among its descendants: other
    runs on the same machine never count.  Leftovers are listed, then killed.
    """
    become_subreaper()
    yield
    me = os.getpid()
    deadline = time.monotonic() + LEFTOVER_DEADLINE_S
    while True:
        reap_zombies()
        left = descendants(me)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not left:
        return
    described = [f"{pid} {' '.join(command_line(pid))[:200]}" for pid in left]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + LEFTOVER_DEADLINE_S
    while any(running(pid) for pid in left) and time.monotonic() < deadline:
        reap_zombies()
        time.sleep(0.05)
    reap_zombies()
    pytest.fail(
        f"{len(left)} process(es) outlived the test run (now killed):\n" + "\n".join(described),
        pytrace=False,
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """A failed test shows the tail of every process log in its tmp dir.

    The real processes (snapserver, snapclient, PipeWire, broadcaster) log
    into ``tmp_path``, which pytest deletes after a few runs: a failure seen
    once in CI is explained by its report or not at all.
    """
    outcome = yield
    report = outcome.get_result()
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if not report.failed or call.when == "collect" or not isinstance(tmp_path, Path):
        return
    for log in sorted(tmp_path.rglob("*.log")):
        with_lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        if with_lines:
            report.sections.append((f"log {log.relative_to(tmp_path)}", "\n".join(with_lines)))


def require_tools(missing: list[str]) -> None:
    """Skip a test whose real components are absent, but never in CI: there they must exist."""
    if not missing:
        return
    message = f"not installed: {', '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must install them: see .ci/run)")
    pytest.skip(message)


@pytest.fixture
def pw_session(tmp_path: Path) -> Iterator[pipewire.PipeWireSession]:
    """A private headless PipeWire with a 'speakers' sink as the configured default.

    'speakers' stands for a sound card: the sink apps play on before broadcaster
    touches them.
    """
    require_tools(pipewire.missing_tools())
    session = pipewire.PipeWireSession(tmp_path / "pw")
    try:
        session.start()
        session.add_speakers()
        yield session
    finally:
        session.stop()


@pytest.fixture
def snap_tools() -> None:
    require_tools(snapserver.missing_tools())


@pytest.fixture
def netns_tools() -> None:
    """A private network namespace can be made here (:mod:`tests.support.netns`)."""
    require_tools(netns.missing_tools())
