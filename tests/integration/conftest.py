"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tools
from tests.support import browser
from tests.support.browser import DevTools
from tests.support.pipewire import PipeWireSession
from tests.support.snapserver import SnapClient, SnapServer, snap_house


@pytest.fixture
def one_room(
    tmp_path: Path, pw_session: PipeWireSession, snap_tools: None
) -> Iterator[tuple[SnapServer, SnapClient]]:
    with snap_house(tmp_path, rooms=1) as (server, (room,)):
        yield server, room


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium's page, phone-sized (the web page's tests)."""
    require_tools(browser.missing_tools())
    async with browser.chromium(tmp_path, window="420,900") as tools:
        yield tools
