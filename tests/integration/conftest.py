"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pipewire import PipeWireSession
from tests.support.procs import wait_until
from tests.support.snapserver import SnapClient, SnapServer, StreamSpec


@pytest.fixture
def one_room(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> Iterator[tuple[SnapServer, SnapClient]]:
    server = SnapServer(tmp_path / "snap", [StreamSpec("Main", path=tmp_path / "snap" / "fifo")])
    server.start()
    room = SnapClient(server, "room1", tmp_path / "room1.raw")
    try:
        room.start()
        wait_until(lambda: len(server.clients()) == 1, 15, "the room to connect")
        yield server, room
    finally:
        room.stop()
        server.stop()
