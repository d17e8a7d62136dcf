"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pipewire import PipeWireSession
from tests.support.snapserver import SnapClient, SnapServer, snap_house


@pytest.fixture
def one_room(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> Iterator[tuple[SnapServer, SnapClient]]:
    with snap_house(tmp_path, rooms=1) as (server, (room,)):
        yield server, room
