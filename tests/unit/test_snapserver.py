"""The embedded snapserver's configuration, rendered from snapcast/embedded.conf.in."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.config import SnapserverConfig
from broadcaster.errors import SnapserverError
from broadcaster.snapserver import EmbeddedPaths, read_template, render_config


def test_template_renders_every_field(tmp_path: Path) -> None:
    paths = EmbeddedPaths(tmp_path / "fifo", tmp_path / "data", tmp_path / "s.conf")
    settings = SnapserverConfig(stream_port=1804, control_port=1805, http_port=1880, codec="pcm")
    text = render_config(settings, paths, read_template())
    assert "${" not in text
    lines = {line.strip() for line in text.splitlines()}
    (source,) = [line for line in lines if line.startswith("source = ")]
    expected = (
        f"source = pipe://{tmp_path}/fifo?name=broadcaster&mode=create"
        "&sampleformat=48000:16:2&codec=pcm"
    )
    # The now-playing controlscript is appended when it is installed.
    assert source == expected or source.startswith(expected + "&controlscript=/")
    assert {"port = 1804", "port = 1805", "port = 1880"} <= lines
    # Control stays on loopback whatever the rooms bind to.
    tcp_section = text.split("[tcp]")[1].split("[http]")[0]
    assert "bind_to_address = 127.0.0.1" in tcp_section
    assert f"datadir = {tmp_path}/data" in lines


def test_a_broken_template_is_a_clear_error(tmp_path: Path) -> None:
    paths = EmbeddedPaths(tmp_path / "fifo", tmp_path / "data", tmp_path / "s.conf")
    with pytest.raises(SnapserverError, match="bad field"):
        render_config(SnapserverConfig(), paths, "port = ${no_such_field}\n")
