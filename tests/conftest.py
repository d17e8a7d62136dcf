"""Shared fixtures: real PipeWire sessions and snapservers, torn down after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import pipewire, snapserver


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
        session.load_null_sink("speakers")
        session.pactl("set-default-sink", "speakers")
        session.wait_default("speakers")
        yield session
    finally:
        session.stop()


@pytest.fixture
def snap_tools() -> None:
    require_tools(snapserver.missing_tools())
