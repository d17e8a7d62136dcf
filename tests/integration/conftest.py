"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tools
from tests.support import browser, mpris_player
from tests.support.browser import DevTools
from tests.support.mpris_player import SessionBus
from tests.support.pipewire import PipeWireSession
from tests.support.snapserver import House, SnapClient, SnapServer, snap_house


@pytest.fixture
def house(tmp_path: Path, pw_session: PipeWireSession, snap_tools: None) -> Iterator[House]:
    """snapserver's default stream (``Main``) and two rooms, in a private PipeWire session."""
    with snap_house(tmp_path) as house:
        yield house


@pytest.fixture
def two_stream_house(tmp_path: Path, snap_tools: None) -> Iterator[House]:
    """Streams ``Main`` and ``Second`` and two rooms (the service's API and web page)."""
    with snap_house(tmp_path, "Main", "Second") as house:
        yield house


@pytest.fixture
def one_room(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> Iterator[tuple[SnapServer, SnapClient]]:
    with snap_house(tmp_path, rooms=1) as house:
        yield house.server, house.room


@pytest.fixture
def session_bus(tmp_path: Path) -> Iterator[SessionBus]:
    """A private D-Bus session bus (MPRIS players and the controlscript)."""
    require_tools(mpris_player.missing_tools())
    bus = SessionBus(tmp_path / "dbus")
    bus.start()
    yield bus
    bus.stop()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium's page, phone-sized (the web page's tests)."""
    require_tools(browser.missing_tools())
    async with browser.chromium(tmp_path, window="420,900") as tools:
        yield tools
