"""Choosing the data path, and the config of the native path's pipe sink."""

from __future__ import annotations

import dataclasses

import pytest

from broadcaster.config import CaptureConfig, Config, DeliveryConfig, ProcessingConfig
from broadcaster.native import NativeStats, python_path_reason, sink_config


def test_the_default_run_takes_the_native_path() -> None:
    assert python_path_reason(Config()) == ""
    assert python_path_reason(Config(delivery=DeliveryConfig(pipe="/run/snapfifo"))) == ""


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"delivery": DeliveryConfig(tcp="tcp://host:4953")}, "tcp://"),
        ({"processing": ProcessingConfig(gain_db=-3.0)}, "processing"),
        ({"processing": ProcessingConfig(speed=1.1)}, "processing"),
        ({"processing": ProcessingConfig(mono=True)}, "processing"),
        ({"processing": ProcessingConfig(swap=True)}, "processing"),
        ({"processing": ProcessingConfig(filter="mod:fn")}, "processing"),
        ({"capture": CaptureConfig(format="44100:f32:2")}, "capture.format"),
        ({"capture": CaptureConfig(sink="alsa_output.x")}, "capture.sink"),
        ({"capture": CaptureConfig(native=False)}, "capture.native"),
    ],
)
def test_what_needs_python_says_why(change: dict[str, object], words: str) -> None:
    assert words in python_path_reason(dataclasses.replace(Config(), **change))  # type: ignore[arg-type]


def test_sink_config_quotes_what_the_user_named() -> None:
    text = sink_config('broadcaster.my "app"', "broadcaster: 'x'", "/run/a b/fifo", latency_ms=100)
    assert 'pipe.filename = "/run/a b/fifo"' in text
    assert 'node.name = "broadcaster.my \\"app\\""' in text
    assert 'node.latency = "4800/48000"' in text
    assert "tunnel.mode = sink" in text
    assert "audio.format = S16LE" in text


def test_a_full_fifo_while_the_sink_runs_counts_stalled_seconds_and_says_so_once() -> None:
    stats = NativeStats(sink_state="running")
    assert stats.observe(3840, 16384) is None  # snapserver reads: nearly empty
    assert stats.reading
    assert stats.observe(16384, 16384) is False  # full: no reader
    assert stats.observe(16384 - 100, 16384) is None  # less room than one atomic write
    assert stats.stalled_seconds == 2
    assert (stats.pipe_bytes, stats.pipe_capacity) == (16284, 16384)
    assert stats.observe(0, 16384) is True  # read again
    assert stats.stalled_seconds == 2


def test_a_full_fifo_while_nothing_plays_loses_nothing() -> None:
    stats = NativeStats(sink_state="suspended")
    assert stats.observe(16384, 16384) is False
    assert not stats.reading
    assert stats.stalled_seconds == 0


def test_a_fifo_that_cannot_be_asked_changes_nothing() -> None:
    stats = NativeStats(sink_state="running", pipe_bytes=5, pipe_capacity=16384)
    assert stats.observe(-1, 16384) is None
    assert (stats.pipe_bytes, stats.reading, stats.stalled_seconds) == (5, True, 0)
    assert stats.observe(0, 0) is None  # capacity unknown: never called full
