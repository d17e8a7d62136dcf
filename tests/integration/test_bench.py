"""``python -m bench`` runs end to end (tiny durations), so the benchmark cannot rot.

The figures of so short a run mean nothing and are not checked: only that
every part ran and reported (docs/performance.md has the real run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tools
from tests.support import pipewire, snapserver

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_bench_runs_and_reports_every_part() -> None:
    converters = [tool for tool in ("ffmpeg", "sox") if shutil.which(tool) is None]
    require_tools(pipewire.missing_tools() + snapserver.missing_tools() + converters)
    argv = [sys.executable, "-m", "bench", "--seconds", "2", "--latency-seconds", "1"]
    argv += ["--live-seconds", "1", "--settle", "0.5", "--startup-runs", "1", "--rounds", "1"]
    argv += ["--conversion-rounds", "1"]
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.splitlines()[-1]
    assert last.startswith("summary ")
    summary = json.loads(last.removeprefix("summary "))
    assert set(summary["conversion"]) >= {"broadcaster", "ffmpeg", "sox"}
    assert summary["quality"]["broadcaster"]["thd_n_db"] < -80  # a sine came out, converted
    assert summary["latency"]
    assert set(summary["relay"]) >= {"python asyncio relay", "ffmpeg s16 -> s16"}
    assert set(summary["startup"]) == {
        "broadcaster status", "broadcaster status (server in a config file)",
        "bare python JSON-RPC call", "python -c pass", 'python -c "import asyncio"',
    }  # fmt: skip
    assert set(summary["live"]) == {
        "idle", "handmade", "pipe-sink", "broadcaster", "broadcaster-gain"
    }  # fmt: skip
    assert "vs_pipe-sink_median_of_rounds" in summary["live"]["broadcaster"]
    assert summary["quality"]["native"]["thd_n_db"] < -80  # PipeWire resampled the sine
    assert summary["latency"]["native: pipe sink -> fifo"]["writes"] > 0
    assert summary["live"]["broadcaster"]["rss_mib"]["broadcaster (python)"] > 0
