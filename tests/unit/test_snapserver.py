"""The managed snapserver's configuration, rendered from snapcast/snapserver.conf.in."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.config import SnapserverConfig
from broadcaster.errors import SnapserverError
from broadcaster.snapserver import EmbeddedPaths, EmbeddedSnapserver, read_template, render_config


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


def _section(text: str, name: str) -> str:
    return text.split(f"[{name}]")[1].split("\n[")[0]


@pytest.mark.parametrize("slots", [1, 2])  # broadcaster run, broadcaster serve
def test_control_stays_on_loopback_and_only_the_stream_port_is_on_the_lan(
    tmp_path: Path, slots: int
) -> None:
    """snapserver's http port serves the whole JSON-RPC API without authentication."""
    settings = SnapserverConfig(fifo=str(tmp_path / "fifo"))
    text = EmbeddedSnapserver(settings, slots=slots).render()
    assert text.count("source = pipe://") == slots
    assert "bind_to_address = 0.0.0.0" in _section(text, "stream")
    assert "bind_to_address = 127.0.0.1" in _section(text, "tcp")
    assert "bind_to_address = 127.0.0.1" in _section(text, "http")


def test_lan_control_is_an_explicit_opt_in(tmp_path: Path) -> None:
    paths = EmbeddedPaths(tmp_path / "fifo", tmp_path / "data", tmp_path / "s.conf")
    settings = SnapserverConfig(bind="192.168.1.5", lan_control=True)
    text = render_config(settings, paths, read_template())
    assert "bind_to_address = 192.168.1.5" in _section(text, "stream")
    for section in ("tcp", "http"):  # broadcaster still reaches it on loopback
        assert _section(text, section).count("bind_to_address") == 2
        assert "bind_to_address = 127.0.0.1\nbind_to_address = 192.168.1.5" in text
    everywhere = SnapserverConfig(lan_control=True)
    text = render_config(everywhere, paths, read_template())
    for section in ("stream", "tcp", "http"):
        assert "bind_to_address = 0.0.0.0" in _section(text, section)
        assert "127.0.0.1" not in _section(text, section)


@pytest.mark.parametrize(
    ("fifo", "datadir", "bind"),
    [
        ("/run/x\n[stream]\nsource = process:///bin/sh", "/d", "0.0.0.0"),
        ("/run/x?name=evil", "/d", "0.0.0.0"),
        ("/run/x", "/d\nsource = process:///bin/sh", "0.0.0.0"),
        ("/run/x", "/d", "0.0.0.0\nsource = process:///bin/sh"),
    ],
)
def test_values_that_would_inject_config_lines_are_refused(
    fifo: str, datadir: str, bind: str
) -> None:
    paths = EmbeddedPaths(Path(fifo), Path(datadir), Path("/tmp/s.conf"))
    with pytest.raises(SnapserverError, match=r"cannot go into snapserver\.conf"):
        render_config(SnapserverConfig(bind=bind), paths, read_template())
