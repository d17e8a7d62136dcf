"""C libraries through ctypes: loaded once, or unusable once with the reason kept."""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import pytest

from broadcaster import resample, sndfile
from broadcaster.audio import AudioFormat, Converter
from broadcaster.clib import CLibrary
from broadcaster.errors import AnnounceError, AudioFormatError

MISSING = "libbroadcaster-not-installed.so.0"


def test_a_library_is_loaded_and_declared_once() -> None:
    declared: list[ctypes.CDLL] = []
    libc = CLibrary("libc.so.6", declared.append, "nothing")

    first = libc.load()

    assert first is not None
    assert libc.load() is first
    assert declared == [first]
    assert libc.error is None


def test_a_missing_library_is_tried_once_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    declared: list[ctypes.CDLL] = []
    missing = CLibrary(MISSING, declared.append, "doing without")

    with caplog.at_level(logging.INFO, logger="broadcaster.clib"):
        assert missing.load() is None
        assert missing.load() is None

    assert missing.error is not None
    assert MISSING in missing.error
    assert not declared
    assert [r.getMessage() for r in caplog.records] == [
        f"{MISSING} not usable ({missing.error}): doing without"
    ]


def test_a_library_without_a_declared_function_is_unusable() -> None:
    def declare(lib: ctypes.CDLL) -> None:
        lib.broadcaster_no_such_function.restype = ctypes.c_int

    libc = CLibrary("libc.so.6", declare, "doing without")

    assert libc.load() is None
    assert libc.error is not None
    assert "broadcaster_no_such_function" in libc.error


def test_without_libsoxr_stereo_resampling_takes_the_float_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resample, "_LIBSOXR", CLibrary(MISSING, resample._declare, "float"))

    assert not resample.direct_available()
    with pytest.raises(AudioFormatError, match=f"libsoxr.so.0 is not available: .*{MISSING}"):
        resample.DirectResampler(44100, 48000, "s16")
    conv = Converter(AudioFormat(44100, 2, "s16"))
    assert conv.path == "float"
    assert len(conv.push(bytes(4 * 4410)) + conv.flush()) // 4 == pytest.approx(4800, abs=8)


def test_without_libsndfile_an_announcement_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sndfile, "_LIBSNDFILE", CLibrary(MISSING, sndfile._declare, "none"))

    with pytest.raises(AnnounceError, match=r"^libsndfile is not installed \(sudo apt-get"):
        sndfile.read_sound(tmp_path / "chime.wav", max_seconds=10)
