"""The page's Announce box in a real headless Chromium: typed text is said over the music.

``broadcaster serve`` captures the music app (660 Hz) into the test's
snapserver; the text typed into the box and sent with "Say" is spoken
(espeak-ng) in the room, the music 12 dB down meanwhile, and back afterwards.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from tests.integration.test_announce import AMPLITUDE, MUSIC_HZ
from tests.integration.test_pipeline import SECOND, make_tone, wait_for_tone
from tests.integration.test_web_page import TOKEN, _open, serving
from tests.support.browser import DevTools
from tests.support.pipewire import PipeWireSession
from tests.support.procs import wait_until
from tests.support.signal import db, s16_stereo_to_float, tone_amplitudes
from tests.support.snapserver import House

pytestmark = pytest.mark.integration


async def test_the_announce_box_says_a_text_over_the_ducked_music(
    tmp_path: Path,
    pw_session: PipeWireSession,
    two_stream_house: House,
    page: DevTools,
) -> None:
    pw_session.play(make_tone(tmp_path / "music.wav", MUSIC_HZ, 48000), "MusicApp")
    with serving(tmp_path, two_stream_house.server, pw_session.env) as port:
        async with aiohttp.ClientSession() as http:
            reply = await http.post(
                f"http://127.0.0.1:{port}/api/captures",
                json={"app": "MusicApp", "stream": "Main"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert reply.status == 201, await reply.text()
        await asyncio.to_thread(wait_for_tone, two_stream_house.room, MUSIC_HZ, 40)
        await _open(page, port)
        offset = two_stream_house.room.size()
        await page.type_into("#announce-text", "Dinner is ready")
        await page.click_selector("#announce-form button[type=submit]")

        # The box empties once the service has said it (the reply came).
        await page.wait_for(
            "document.querySelector('#announce-text').value === ''",
            60,
            "the text said and the box emptied",
        )
        assert not await page.evaluate("!document.querySelector('#error').hidden")
        await asyncio.to_thread(
            wait_until,
            lambda: two_stream_house.room.size() - offset > 4 * SECOND,
            20,
            "the room to play on",
        )
        audio = two_stream_house.room.read_from(offset)
    music = tone_amplitudes(s16_stereo_to_float(audio)[:, 0], 48000, (MUSIC_HZ,))[:, 0]
    # The music went 12 dB down while the text was said, and came back.
    assert (music < AMPLITUDE * 10 ** (-11 / 20)).sum() * 0.02 > 0.5
    assert db(float(np.median(music[-25:]))) == pytest.approx(db(AMPLITUDE), abs=1)
