"""The controlscript under a real snapserver (0.26 or 0.31), following a test MPRIS player
on a real private D-Bus session bus."""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster import mpris, nowplaying
from tests.conftest import require_tools
from tests.support import snapserver
from tests.support.mpris_player import SessionBus, TestPlayer
from tests.support.procs import catches, children, command_line, running, wait_until
from tests.support.snapserver import SnapServer, StreamSpec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
APP = "testapp"
DEADLINE = 20.0


@pytest.fixture
def player(session_bus: SessionBus, tmp_path: Path) -> Iterator[TestPlayer]:
    test_player = TestPlayer(session_bus, APP, tmp_path)
    test_player.start()
    yield test_player
    test_player.stop()


def runtime(tmp_path: Path) -> Path:
    """The controlscript's XDG_RUNTIME_DIR (never the user's real one)."""
    path = tmp_path / "run"
    path.mkdir(exist_ok=True)
    return path


def wrapper(tmp_path: Path, bus: SessionBus, *args: str) -> Path:
    """An executable for ``controlscript=`` (0.26 takes a path, no arguments):
    records the arguments snapserver passes, then runs the controlscript."""
    script = tmp_path / f"controlscript-{len(list(tmp_path.glob('controlscript-*')))}"
    argv = [sys.executable, "-m", "broadcaster.controlscript", *args]
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {shlex.quote(str(script))}.args\n'
        f"export DBUS_SESSION_BUS_ADDRESS={shlex.quote(bus.address)}\n"
        f"export PYTHONPATH={shlex.quote(str(REPO))}\n"
        f"export XDG_RUNTIME_DIR={shlex.quote(str(runtime(tmp_path)))}\n"
        f'exec {shlex.join(argv)} "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    require_tools(snapserver.missing_tools())
    servers: list[SnapServer] = []

    def make(streams: dict[str, Path | None]) -> SnapServer:
        specs = [
            StreamSpec(
                name,
                path=tmp_path / f"{name}.fifo",
                extra={"controlscript": str(script)} if script is not None else {},
            )
            for name, script in streams.items()
        ]
        server = SnapServer(tmp_path / "snapserver", specs)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


def properties(server: SnapServer, stream: str) -> dict[str, Any]:
    for entry in server.status()["streams"]:
        if entry["id"] == stream:
            return dict(entry.get("properties", {}))
    raise AssertionError(f"no stream {stream}")


def title(server: SnapServer, stream: str) -> str | None:
    value = properties(server, stream).get("metadata", {}).get("title")
    return str(value) if value is not None else None


def test_metadata_appears_in_server_status(
    session_bus: SessionBus, player: TestPlayer, make_server: Any, tmp_path: Path
) -> None:
    script = wrapper(tmp_path, session_bus, "--player", APP)
    server = make_server({"app": script})

    wait_until(lambda: title(server, "app") == "First Light", DEADLINE, "the track in GetStatus")
    props = properties(server, "app")
    meta = props["metadata"]
    assert meta["artist"] == ["Test Artist"]
    assert meta["album"] == "Test Album"
    assert meta["artUrl"] == "https://example.invalid/art/0.jpg"
    assert meta["duration"] == pytest.approx(180.0)
    assert props["playbackStatus"] == "paused"
    assert props["volume"] == 50
    assert props["canControl"]
    assert props["canPlay"]
    assert props["canGoNext"]
    assert not props["canGoPrevious"]
    # snapserver passes the stream id and its HTTP port; 0.31 (Debian 13) also
    # its HTTP host name ([http] host, the machine's name by default); 0.26
    # (Debian 12) nothing else.
    args = Path(f"{script}.args").read_text(encoding="utf-8").split()
    assert args[:2] == ["--stream=app", f"--snapcast-port={server.http_port}"]
    if server.version_info() >= (0, 31):
        assert len(args) == 3
        assert args[2].startswith("--snapcast-host=")
        assert args[2] != "--snapcast-host="
    else:
        assert len(args) == 2


def test_stream_control_reaches_the_player(
    session_bus: SessionBus, player: TestPlayer, make_server: Any, tmp_path: Path
) -> None:
    server = make_server({"app": wrapper(tmp_path, session_bus, "--player", APP)})
    wait_until(lambda: properties(server, "app").get("canPlay"), DEADLINE, "canPlay")

    server.rpc("Stream.Control", {"id": "app", "command": "play"})
    wait_until(lambda: "Play" in player.calls(), DEADLINE, "Play at the player")
    wait_until(
        lambda: properties(server, "app").get("playbackStatus") == "playing",
        DEADLINE,
        "playing in GetStatus",
    )

    server.rpc("Stream.Control", {"id": "app", "command": "pause"})
    wait_until(lambda: "Pause" in player.calls(), DEADLINE, "Pause at the player")

    server.rpc("Stream.Control", {"id": "app", "command": "next"})
    wait_until(lambda: "Next" in player.calls(), DEADLINE, "Next at the player")
    wait_until(lambda: title(server, "app") == "Second Wind", DEADLINE, "the next track")

    server.rpc("Stream.Control", {"id": "app", "command": "previous"})
    wait_until(lambda: title(server, "app") == "First Light", DEADLINE, "the previous track")

    server.rpc("Stream.Control", {"id": "app", "command": "seek", "params": {"offset": 12.5}})
    wait_until(lambda: "Seek" in player.calls(), DEADLINE, "Seek at the player")
    wait_until(
        lambda: properties(server, "app").get("position") == pytest.approx(12.5),
        DEADLINE,
        "the new position in GetStatus",
    )

    server.rpc("Stream.SetProperty", {"id": "app", "property": "volume", "value": 30})
    wait_until(lambda: "Set:Volume=0.3" in player.calls(), DEADLINE, "the volume at the player")
    wait_until(lambda: properties(server, "app").get("volume") == 30, DEADLINE, "volume 30")


def test_player_restart_is_followed(
    session_bus: SessionBus, player: TestPlayer, make_server: Any, tmp_path: Path
) -> None:
    server = make_server({"app": wrapper(tmp_path, session_bus, "--player", APP)})
    wait_until(lambda: title(server, "app") == "First Light", DEADLINE, "the first track")
    server.rpc("Stream.Control", {"id": "app", "command": "next"})
    wait_until(lambda: title(server, "app") == "Second Wind", DEADLINE, "the next track")

    player.stop()
    wait_until(lambda: title(server, "app") is None, DEADLINE, "no metadata once the app quits")
    props = properties(server, "app")
    assert props["playbackStatus"] == "stopped"
    assert not props["canControl"]

    player.start()  # a fresh process: starts at its first track again
    wait_until(lambda: title(server, "app") == "First Light", DEADLINE, "the restarted player")
    server.rpc("Stream.Control", {"id": "app", "command": "play"})
    wait_until(lambda: "Play" in player.calls(), DEADLINE, "Play at the restarted player")


def test_a_hung_player_is_refused_in_time_and_recovers(
    session_bus: SessionBus, player: TestPlayer, make_server: Any, tmp_path: Path
) -> None:
    server = make_server({"app": wrapper(tmp_path, session_bus, "--player", APP)})
    wait_until(lambda: title(server, "app") == "First Light", DEADLINE, "the first track")
    assert player.proc is not None
    player.proc.signal(signal.SIGSTOP)  # the app hangs: D-Bus calls to it get no answer
    try:
        started = time.monotonic()
        with pytest.raises(AssertionError, match="failed"):
            server.rpc("Stream.Control", {"id": "app", "command": "next"}, timeout=15)
        assert time.monotonic() - started < 10  # the controlscript's own deadline, not a hang
        assert server.status()["streams"]  # snapserver still answers
    finally:
        player.proc.signal(signal.SIGCONT)
    # D-Bus kept the refused Next for the app: it is carried out once the app wakes.
    server.rpc("Stream.Control", {"id": "app", "command": "next"})
    wait_until(lambda: player.calls().count("Next") == 2, DEADLINE, "both Nexts at the player")
    wait_until(lambda: title(server, "app") == "Third Time", DEADLINE, "two tracks on")


def test_session_bus_restart_is_followed(
    session_bus: SessionBus, player: TestPlayer, make_server: Any, tmp_path: Path
) -> None:
    server = make_server({"app": wrapper(tmp_path, session_bus, "--player", APP)})
    wait_until(lambda: title(server, "app") == "First Light", DEADLINE, "the first track")

    player.stop()
    session_bus.stop()
    session_bus.socket.unlink(missing_ok=True)
    wait_until(lambda: title(server, "app") is None, DEADLINE, "no metadata without a bus")
    assert server.proc is not None
    assert server.proc.alive()

    session_bus.start()  # same address, as after a logout and login
    player.start()
    wait_until(lambda: title(server, "app") == "First Light", DEADLINE, "the player on the new bus")
    server.rpc("Stream.Control", {"id": "app", "command": "next"})
    wait_until(lambda: title(server, "app") == "Second Wind", DEADLINE, "control on the new bus")


def test_target_file_switches_the_followed_app(
    session_bus: SessionBus, player: TestPlayer, make_server: Any, tmp_path: Path
) -> None:
    # No --player: the controlscript follows what broadcaster writes for its stream.
    server = make_server({"slot": wrapper(tmp_path, session_bus)})
    base = runtime(tmp_path) / "broadcaster"
    wait_until(
        lambda: properties(server, "slot").get("playbackStatus") == "stopped",
        DEADLINE,
        "the plugin's first properties",
    )
    assert title(server, "slot") is None

    nowplaying.write_target("slot", nowplaying.PlayerMatch(APP), base)
    wait_until(lambda: title(server, "slot") == "First Light", DEADLINE, "the captured app's track")
    server.rpc("Stream.Control", {"id": "slot", "command": "play"})
    wait_until(lambda: "Play" in player.calls(), DEADLINE, "Play at the player")

    nowplaying.write_target("slot", None, base)  # the capture stopped
    wait_until(lambda: title(server, "slot") is None, DEADLINE, "no metadata after the capture")


def test_stream_without_a_player_shows_no_metadata(
    session_bus: SessionBus, player: TestPlayer, make_server: Any, tmp_path: Path
) -> None:
    server = make_server(
        {
            "absent": wrapper(tmp_path, session_bus, "--player", "no-such-app"),
            "unset": wrapper(tmp_path, session_bus),
            "plain": None,
        }
    )
    wait_until(
        lambda: properties(server, "absent").get("playbackStatus") == "stopped",
        DEADLINE,
        "the plugin's first properties",
    )
    for stream in ("absent", "unset", "plain"):
        assert title(server, stream) is None
        with pytest.raises(AssertionError, match="failed"):
            server.rpc("Stream.Control", {"id": stream, "command": "play"})
    assert player.calls() == ["ready"]
    assert server.proc is not None
    assert server.proc.alive()
    assert {s["id"] for s in server.status()["streams"]} == {"absent", "unset", "plain"}


async def test_now_playing_by_name_and_by_pid(session_bus: SessionBus, player: TestPlayer) -> None:
    assert player.proc is not None
    by_name = await mpris.now_playing(APP, bus_address=session_bus.address)
    by_pid = await mpris.now_playing(pid=player.proc.pid, bus_address=session_bus.address)
    assert by_name is not None
    assert by_name.title == "First Light"
    assert by_name.identity == "Broadcaster Test Player"
    assert by_pid == by_name
    assert await mpris.now_playing("no-such-app", bus_address=session_bus.address) is None
    assert session_bus.proc is not None  # a sibling of the player, neither parent nor child
    unrelated = session_bus.proc.pid
    assert await mpris.now_playing(pid=unrelated, bus_address=session_bus.address) is None


async def test_now_playing_without_a_bus_is_a_clear_error(tmp_path: Path) -> None:
    from broadcaster.errors import MprisError

    with pytest.raises(MprisError, match="session bus"):
        await mpris.now_playing(APP, bus_address=f"unix:path={tmp_path / 'nobus'}")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_controlscript_outlives_snapserver(
    session_bus: SessionBus, make_server: Any, tmp_path: Path, how: signal.Signals
) -> None:
    # Several streams: snapserver 0.31 lets each script inherit the others'
    # stdin pipes, so EOF alone never comes; the scripts must notice anyway.
    streams = {f"app{n}": wrapper(tmp_path, session_bus, "--player", f"{APP}{n}") for n in range(3)}
    server = make_server(streams)
    proc = server.proc
    assert proc is not None

    def three_scripts() -> list[int] | None:
        """The scripts, once all three are past start-up: armed for SIGTERM (a
        script still importing when snapserver dies cannot know its parent)."""
        found = [
            pid
            for pid in children(proc.pid)
            if "broadcaster.controlscript" in command_line(pid) and catches(pid, signal.SIGTERM)
        ]
        return found if len(found) == 3 else None

    started = wait_until(three_scripts, DEADLINE, "snapserver to start three controlscripts") or []
    proc.signal(how)
    wait_until(
        lambda: not any(running(pid) for pid in started),
        DEADLINE,
        f"every controlscript to exit after snapserver's {how.name}",
    )
