"""Processing on the real live path: ``broadcaster run --speed --gain`` reaches a room.

The app plays 400 Hz; with ``--speed 1.25`` the room must hear 500 Hz (pitch
up, like asetrate), at the level ``--gain`` asks for, and the log must tell
the buffering policy at work (capture switches to f32 for the float chain).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.integration.test_pipeline import (
    make_tone,
    start_broadcaster,
    stops_cleanly,
    wait_for_tone,
)
from tests.integration.test_pipeline_faults import run_against
from tests.support.pipewire import PipeWireSession
from tests.support.procs import wait_until
from tests.support.signal import rms, s16_stereo_to_float
from tests.support.snapserver import House

pytestmark = pytest.mark.integration


def test_speed_and_gain_on_the_live_path(
    tmp_path: Path,
    pw_session: PipeWireSession,
    house: House,
) -> None:
    pw_session.play_on_speakers(make_tone(tmp_path / "t.wav", 400.0, 48000), "TargetApp")
    broadcaster = start_broadcaster(
        pw_session,
        *run_against(pw_session, house.server),
        "--speed",
        "1.25",
        "--prebuffer",
        "1",
        "--gain",
        "-6dB",
    )
    with stops_cleanly(broadcaster):
        audio = wait_for_tone(house.room, 500.0, timeout=40)
        # make_tone plays at 0.5 (rms 0.354); -6 dB halves it.  The speed policy
        # plays planned gaps of silence: measure the level of the sounding blocks.
        left = s16_stereo_to_float(audio)[:, 0]
        blocks = [rms(left[i : i + 960]) for i in range(0, len(left) - 960, 960)]
        sounding = [level for level in blocks if level > 0.02]
        assert sounding, "no sounding audio"
        assert float(np.median(sounding)) == pytest.approx(0.177, rel=0.1)
        wait_until(
            lambda: "speed buffer holds" in broadcaster.log_path.read_text(),
            10,
            "the policy to be logged",
        )
    log = broadcaster.log_path.read_text()
    assert "processing: speed 1.25 (prebuffer 1 s), gain -6 dB, limiter" in log
    assert "Traceback" not in log
