"""The browser player's JavaScript unit tests (tests/js, node's built-in runner).

They parse byte sequences recorded from the real snapserver and exercise the
clock filter and the playout scheduler; this test runs them so that the one
pytest command covers them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import require_tools

REPO = Path(__file__).resolve().parents[2]


def test_node_unit_tests_pass() -> None:
    require_tools([] if shutil.which("node") else ["node"])
    result = subprocess.run(
        ["node", "--test", "tests/js/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# pass 0" not in result.stdout
