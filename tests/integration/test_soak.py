"""The soak: nothing lost on the way to the room, flat memory.

The default (native) path is judged at the room: a real snapclient's audio,
the app's tone checked for gaps window by window; the Python path by its own
counters between capture and pipe.  The long native soak asserts no gap
at all in the room (run it on a quiet box); the short one, in the regular
suite beside other work, that the tone played on (the gaps it finds are
printed, with where they came from).
``pytest -m soak`` runs the full 10 minutes of each (``SOAK_MINUTES``
to change it); the regular suite runs 15-second versions so the script
cannot rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tools
from tests.support import pipewire, snapserver

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def run_soak(path: str, minutes: float, every: float) -> dict[str, float]:
    require_tools(pipewire.missing_tools() + snapserver.missing_tools())
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--path", path, "--minutes", str(minutes),
         "--every", str(every)],
        capture_output=True,
        text=True,
        timeout=minutes * 60 + 180,
        check=False,
    )  # fmt: skip
    print(result.stdout)  # noqa: T201 - the figures are the point of a soak
    assert result.returncode == 0, result.stderr[-3000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("summary ")]
    return dict(json.loads(summary[-1].removeprefix("summary ")))


def check_native(summary: dict[str, float], *, strict: bool) -> None:
    if strict:
        # Every window the room played since the check began was the tone, whole.
        assert summary["gaps"] == 0
        assert summary["tone_s"] == summary["room_s"]
    else:
        # Under this shared box's load the graph and snapserver miss a cycle
        # now and then (a 20-140 ms gap, docs/reliability.md): the short soak
        # holds the path to the tone playing on (no flapping route, no sink
        # lost, no app on the speakers), not to a quiet box's zero.
        assert summary["tone_s"] >= 0.95 * summary["room_s"]
    # The room kept playing: its file player is paced by its clock, not by load.
    assert summary["room_s"] > 0.8 * summary["seconds"]
    assert summary["sink_restarts"] == 0
    assert summary["rss_last_mib"] - summary["rss_first_mib"] < 5
    assert summary["sink_rss_last_mib"] - summary["sink_rss_first_mib"] < 2


def check_accounted(summary: dict[str, float]) -> None:
    """Whatever was captured was delivered, or counted as dropped: nothing is lost unseen."""
    assert summary["chunks_discarded"] == 0
    assert summary["recorder_restarts"] == 0
    # A chunk is one captured block (its size is pw-record's: ~20-40 ms): the
    # unit of what is in flight at the end, and of what a drop loses.
    chunks = summary["chunks_written"] + summary["chunks_dropped"]
    chunk_s = summary["audio_captured_s"] / max(1, chunks)
    missing = summary["audio_captured_s"] - summary["audio_delivered_s"]
    assert -chunk_s <= missing <= (summary["chunks_dropped"] + 1) * 1.5 * chunk_s, summary
    assert summary["rss_last_mib"] - summary["rss_first_mib"] < 5


def check_python(summary: dict[str, float]) -> None:
    """The Python path's full soak: nothing dropped, everything captured delivered."""
    check_accounted(summary)
    assert summary["chunks_dropped"] == 0
    # Everything captured was delivered (within a block in flight: 1024 frames, 21 ms).
    assert abs(summary["audio_captured_s"] - summary["audio_delivered_s"]) <= 0.025
    assert summary["audio_delivered_s"] > 0.8 * summary["seconds"]


@pytest.mark.integration
def test_short_soak_native() -> None:
    check_native(run_soak("native", 0.25, 5), strict=False)


@pytest.mark.integration
def test_short_soak_python() -> None:
    """The soak script runs and its counters add up.  Whether snapserver kept up
    (no chunk dropped) is a figure of the full soak (``-m soak``), run on a
    machine of its own: in the regular suite, beside the soak's own busy core,
    other suites can starve snapserver's reader past the queue."""
    check_accounted(run_soak("python", 0.25, 5))


@pytest.mark.soak
def test_soak_native() -> None:
    check_native(run_soak("native", float(os.environ.get("SOAK_MINUTES", "10")), 30), strict=True)


@pytest.mark.soak
def test_soak_python() -> None:
    check_python(run_soak("python", float(os.environ.get("SOAK_MINUTES", "10")), 30))
