"""Claims: one broadcaster per app and per destination."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broadcaster.claims import claim, held
from broadcaster.errors import BusyError


def test_a_held_claim_is_refused_with_the_holders_pid_and_freed_after(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    refused = pytest.raises(BusyError, match=rf"'x' is already captured by pid {os.getpid()};")
    with claim("app broadcaster.x", "'x' is already captured", env):
        with refused, claim("app broadcaster.x", "'x' is already captured", env):
            pass
        with claim("app broadcaster.y", "'y' is already captured", env):
            pass  # another key is free
    with claim("app broadcaster.x", "'x' is already captured", env):
        assert held("app broadcaster.x", env)
        assert not held("app broadcaster.y", env)
    assert not held("app broadcaster.x", env)  # released on exit
