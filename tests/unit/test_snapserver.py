"""The managed snapserver's configuration, rendered from snapcast/snapserver.conf.in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broadcaster import paths
from broadcaster.config import SnapserverConfig
from broadcaster.errors import SnapserverError
from broadcaster.snapserver import (
    EmbeddedPaths,
    EmbeddedSnapserver,
    Slot,
    read_template,
    render_config,
)


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


def test_the_announcement_stream_comes_last_without_the_controlscript(tmp_path: Path) -> None:
    """broadcaster run's snapserver: new rooms still get the music's stream (the first)."""
    paths = EmbeddedPaths(tmp_path / "fifo", tmp_path / "data", tmp_path / "s.conf")
    announce = Slot("broadcaster-announce", tmp_path / "announce-fifo")
    text = render_config(SnapserverConfig(codec="pcm"), paths, read_template(), announce=announce)
    sources = [line for line in text.splitlines() if line.startswith("source = ")]
    assert len(sources) == 2
    assert "?name=broadcaster&" in sources[0]
    assert sources[1] == (
        f"source = pipe://{tmp_path}/announce-fifo?name=broadcaster-announce&mode=create"
        "&sampleformat=48000:16:2&codec=pcm"
    )


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
    # Any web page in a browser on this machine can POST to (or open a
    # WebSocket on) a loopback http port: it is not served at all.
    assert "enabled = false" in _section(text, "http")
    assert "enabled = true" in _section(text, "tcp")


def test_lan_control_is_an_explicit_opt_in(tmp_path: Path) -> None:
    paths = EmbeddedPaths(tmp_path / "fifo", tmp_path / "data", tmp_path / "s.conf")
    settings = SnapserverConfig(bind="192.168.1.5", lan_control=True)
    text = render_config(settings, paths, read_template())
    assert "bind_to_address = 192.168.1.5" in _section(text, "stream")
    for section in ("tcp", "http"):  # broadcaster still reaches it on loopback
        assert _section(text, section).count("bind_to_address") == 2
        assert "bind_to_address = 127.0.0.1\nbind_to_address = 192.168.1.5" in text
    assert "enabled = true" in _section(text, "http")  # snapweb and the apps need it
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


# --- the runtime directory -------------------------------------------------------------


@pytest.fixture
def fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $XDG_RUNTIME_DIR: the shared-/tmp fallback, moved into tmp_path."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(paths, "FALLBACK_BASE", tmp_path)
    return tmp_path / f"broadcaster-{os.getuid()}"


def test_fallback_runtime_dir_is_created_private(fallback: Path) -> None:
    assert paths.private_runtime_dir() == fallback
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700


@pytest.mark.parametrize("planted", ["mode 0755", "symlink", "other user", "file"])
def test_a_fallback_dir_made_by_someone_else_is_refused(
    fallback: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    if planted == "mode 0755":
        fallback.mkdir()
        fallback.chmod(0o755)
        message = r"open to other users \(mode 0755\)"
    elif planted == "symlink":
        (tmp_path / "theirs").mkdir(mode=0o700)
        fallback.symlink_to(tmp_path / "theirs")
        message = "symbolic link"
    elif planted == "other user":
        fallback.mkdir(mode=0o700)
        real = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real + 4242)  # made by us: as someone else
        monkeypatch.setattr(paths, "runtime_dir", lambda env=None: fallback)
        message = "belongs to another user"
    else:
        fallback.write_text("x")
        message = "not a directory"
    settings = SnapserverConfig(datadir=str(tmp_path / "data"))
    server = EmbeddedSnapserver(settings)
    with pytest.raises(SnapserverError, match=message):
        server._write_config()
    assert not (fallback / "snapserver.conf").exists() or planted == "other user"


def test_xdg_runtime_dir_left_open_by_an_older_version_is_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "broadcaster").mkdir(mode=0o755)
    (tmp_path / "broadcaster").chmod(0o755)
    assert paths.private_runtime_dir() == tmp_path / "broadcaster"
    assert stat.S_IMODE((tmp_path / "broadcaster").stat().st_mode) == 0o700


def test_snapservers_pipe_is_closed_to_others(tmp_path: Path) -> None:
    fifo = tmp_path / "snapfifo"
    os.mkfifo(fifo)
    fifo.chmod(0o666)  # as snapserver 0.26 makes it
    EmbeddedSnapserver(SnapserverConfig(fifo=str(fifo)))._check_fifos()
    assert stat.S_IMODE(fifo.stat().st_mode) == 0o600


@pytest.mark.parametrize("planted", ["symlink", "regular file", "other user"])
def test_snapservers_pipe_must_be_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    fifo = tmp_path / "snapfifo"
    if planted == "symlink":
        os.mkfifo(tmp_path / "theirs")
        fifo.symlink_to(tmp_path / "theirs")
    elif planted == "regular file":
        fifo.write_text("x")
    else:
        os.mkfifo(fifo, 0o600)
        real = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real + 4242)
    server = EmbeddedSnapserver(SnapserverConfig(fifo=str(fifo)))
    with pytest.raises(SnapserverError, match="not using snapserver's pipe"):
        server._check_fifos()
