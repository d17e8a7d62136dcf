"""Choosing the data path, and the config of the native path's pipe sink."""

from __future__ import annotations

import dataclasses

import pytest

from broadcaster.config import CaptureConfig, Config, DeliveryConfig, ProcessingConfig
from broadcaster.native import python_path_reason, sink_config


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
