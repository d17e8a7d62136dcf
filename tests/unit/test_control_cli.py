"""The room-control CLI's own logic: volume arguments, server resolution, output."""

from __future__ import annotations

import argparse
import asyncio
import copy
import inspect
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cli import build_parser, formatting, lookup, main, print_error
from broadcaster.cli import control as cli
from broadcaster.control import Event
from broadcaster.discovery import DiscoveredServer
from broadcaster.errors import BroadcasterError
from broadcaster.rooms import ServerStatus
from tests.support.fake_snapserver import Answer, FakeSnapserver
from tests.unit.test_control_rooms import STATUS


@pytest.mark.parametrize(
    ("text", "current", "expected"),
    [("40", 70, 40), ("+5", 70, 75), ("-5", 70, 65), ("+50", 70, 100), ("-90", 70, 0)],
)
def test_volume_arguments(text: str, current: int, expected: int) -> None:
    assert cli.apply_volume(current, cli._volume_arg(text)) == expected


@pytest.mark.parametrize("text", ["101", "loud", "+", "4.5", "", "²", "+²"])
def test_bad_volume_is_a_usage_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["room", "volume", "x", text])
    assert exit_.value.code == 2
    assert "not a volume" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["0", "-1"])
def test_watch_count_must_be_a_positive_number(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`watch --count 0` (or -1) exited at once with nothing printed and status 0."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["watch", "--count", count])
    assert exit_.value.code == 2
    assert f"argument --count: {count!r} is not a number of notifications (1 or more)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--server", "127.0.0.1:1705", "status"],
        ["-v", "--server=h", "room", "volume", "k", "4"],
        ["--json", "status"],
        ["--timeout", "2", "watch"],
    ],
)
def test_a_command_option_before_the_command_says_where_it_goes(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`broadcaster --server H status` said "invalid choice: 'H'" (H read as the command)."""
    with pytest.raises(SystemExit) as exit_:
        build_parser(argv)
    assert exit_.value.code == 2
    option = next(a for a in argv if a.startswith("--")).split("=")[0]
    command = next(a for a in argv if a in ("status", "room", "watch"))
    assert f"{option} goes after the command: broadcaster {command} ... {option}" in (
        capsys.readouterr().err
    )


async def _handle(args: argparse.Namespace) -> int:
    """Run a parsed command's handler as main() does; a quick (blocking) one in a
    thread, off the loop the fake server answers on."""
    if inspect.iscoroutinefunction(args.handler):
        return int(await args.handler(args))
    return int(await asyncio.to_thread(args.handler, args))


def _args(tmp_path: Path, **kw: object) -> argparse.Namespace:
    config = tmp_path / "config.toml"
    if not config.exists():
        config.write_text("", encoding="utf-8")
    values = {"server": None, "timeout": None, "config": str(config), **kw}
    return argparse.Namespace(**values)


@pytest.mark.parametrize("timeout", [0.0, -1.0, 301.0, float("nan")])
async def test_a_timeout_out_of_range_says_the_range(tmp_path: Path, timeout: float) -> None:
    """`--timeout 0` said "is out of range (0-300 s)", as if 0 were in it."""
    with pytest.raises(BroadcasterError, match=r"must be more than 0 and at most 300 s"):
        await lookup.resolve_server(_args(tmp_path, timeout=timeout, server="127.0.0.1"))


async def test_server_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found: list[DiscoveredServer] = []
    calls: list[float] = []

    async def fake_discover(timeout: float = 2.0) -> list[DiscoveredServer]:
        calls.append(timeout)
        return found

    monkeypatch.setattr("broadcaster.discovery.discover", fake_discover)
    monkeypatch.delenv("BROADCASTER_SERVER", raising=False)
    (tmp_path / "config.toml").write_text('server = "file-host:1800"\n', encoding="utf-8")
    args = _args(tmp_path, server="flag-host")
    assert await lookup.resolve_server(args) == ("flag-host", 1705, 5.0)
    monkeypatch.setenv("BROADCASTER_SERVER", "env-host:1900")
    assert await lookup.resolve_server(_args(tmp_path, timeout=2.0)) == ("env-host", 1900, 2.0)
    monkeypatch.delenv("BROADCASTER_SERVER")
    assert await lookup.resolve_server(_args(tmp_path)) == ("file-host", 1800, 5.0)
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    assert await lookup.resolve_server(_args(tmp_path)) == ("127.0.0.1", 1705, 5.0)
    found.append(DiscoveredServer("Snapcast", "a.local.", ("10.1.1.1",), 1805))
    assert await lookup.resolve_server(_args(tmp_path)) == ("10.1.1.1", 1805, 5.0)
    assert calls == [lookup.DISCOVERY_TIMEOUT, lookup.DISCOVERY_TIMEOUT]
    assert not [c for c in calls if c > 2]


@pytest.mark.parametrize(
    ("env", "argv", "says"),
    [
        ("127.0.0.1:abc", [], "$BROADCASTER_SERVER '127.0.0.1:abc' is not HOST or HOST:PORT"),
        ("h:99999", [], "$BROADCASTER_SERVER 'h:99999': 99999 is not a TCP port (1-65535)"),
        ("", ["--server", "http://h:1705"], "--server 'http://h:1705' is not HOST or HOST:PORT"),
        ("", ["--server", "h:0"], "--server 'h:0': 0 is not a TCP port (1-65535)"),
    ],
)
def test_a_malformed_server_address_names_where_it_came_from(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str,
    argv: list[str],
    says: str,
) -> None:
    """A newcomer with a stale $BROADCASTER_SERVER in a shell profile is told
    that the variable is what to fix."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.delenv("BROADCASTER_CONFIG", raising=False)
    monkeypatch.setenv("BROADCASTER_SERVER", env)
    assert main(["status", *argv]) == 1
    assert capsys.readouterr().err == f"broadcaster: error: {says}\n"


async def test_of_several_servers_found_the_first_that_answers_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listening = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    closed = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    gone = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    found = [
        DiscoveredServer("Snapcast", "gone.local.", ("127.0.0.1",), gone),
        DiscoveredServer("Snapcast", "here.local.", ("127.0.0.1",), port),
    ]

    async def fake_discover(timeout: float = 2.0) -> list[DiscoveredServer]:
        return found

    monkeypatch.setattr("broadcaster.discovery.discover", fake_discover)
    monkeypatch.delenv("BROADCASTER_SERVER", raising=False)
    try:
        assert await lookup.resolve_server(_args(tmp_path)) == ("127.0.0.1", port, 5.0)
        found.pop()  # only the silent one: it is used anyway, so the error names it
        assert await lookup.resolve_server(_args(tmp_path)) == ("127.0.0.1", gone, 5.0)
    finally:
        listening.close()
        await listening.wait_closed()


def test_status_table_lists_everything() -> None:
    text = formatting.format_status(ServerStatus.from_json(STATUS))
    lines = text.splitlines()
    assert lines[0].startswith("Snapserver 0.26.0")
    assert any(line.startswith("Küche 🎵") and "kitchen-pi" in line for line in lines)
    assert any(line.startswith("Main") and "flac" in line for line in lines)


def test_status_shows_what_each_stream_plays() -> None:
    data: dict[str, Any] = copy.deepcopy(STATUS)
    data["server"]["streams"][0]["properties"] = {
        "metadata": {"title": "Blue in Green", "artist": ["Miles Davis"]}
    }
    text = formatting.format_status(ServerStatus.from_json(data))
    assert "NOW PLAYING" in text
    assert any(line.endswith("Blue in Green — Miles Davis") for line in text.splitlines())


def test_event_line() -> None:
    event = Event("Client.OnVolumeChanged", {"id": "aa:01", "volume": {"percent": 3}})
    assert formatting.format_event(event).endswith("Client.OnVolumeChanged aa:01 percent=3")


HOSTILE = "Evil\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\x9b31m\u202eroom"
"""A room name any snapclient on the LAN can announce (its Hello's hostname):
OSC 52 (write the clipboard), clear the screen, an 8-bit CSI, a bidi override."""


def _hostile_status() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(STATUS)
    client = data["server"]["groups"][0]["clients"][0]
    client["config"]["name"] = HOSTILE
    client["host"]["name"] = HOSTILE
    data["server"]["streams"][0]["properties"] = {"metadata": {"title": HOSTILE}}
    return data


def _no_control_characters(text: str) -> None:
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in text, repr(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["status", "--json"],
        ["room", "volume", "nowhere", "40"],
        ["room", "volume", "aa:01", "40"],
    ],
)
async def test_names_from_the_network_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Room names and titles come from anyone on the network: printed, their
    control characters are shown escaped, never sent to the terminal."""
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(result=_hostile_status())
        fake.handlers["Client.SetVolume"] = lambda p: Answer(result={"volume": p["volume"]})
        args = build_parser().parse_args([*argv, "--server", f"127.0.0.1:{fake.port}"])
        args.config = _args(tmp_path).config
        try:
            await _handle(args)
        except BroadcasterError as failed:
            print_error(failed)  # as main() prints it
    out, err = capsys.readouterr()
    assert "Evil" in out + err
    _no_control_characters(out + err)
    event = Event("Client.OnNameChanged", {"id": "aa:01", "name": HOSTILE})
    _no_control_characters(formatting.format_event(event))
    # `watch` prints one line per event, whatever the name holds.
    event = Event("Client.OnNameChanged", {"id": "aa:01", "name": "a\nb\tc"})
    assert formatting.format_event(event).endswith(r"name=a\x0ab\x09c")


def test_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.procs import free_port

    port = free_port()
    assert main(["status", "--server", f"127.0.0.1:{port}", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("broadcaster: error: cannot reach snapserver at 127.0.0.1:")
    assert err.count("\n") == 1


async def test_room_volume_is_one_status_read_and_one_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Client.SetVolume"] = lambda p: Answer(result={"volume": p["volume"]})
        args = build_parser().parse_args(
            ["room", "volume", "HOST1", "40", "--server", f"127.0.0.1:{fake.port}"]
        )
        args.config = _args(tmp_path).config  # an empty config file
        assert await args.handler(args) == 0
    assert [r["method"] for r in fake.requests] == ["Server.GetStatus", "Client.SetVolume"]
    assert fake.requests[1]["params"] == {"id": "room1", "volume": {"percent": 40}}
    assert capsys.readouterr().out.strip() == "host1: volume 40, latency 0 ms"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["-h"],
        ["bogus"],
        ["status"],
        ["status", "-h"],
        ["status", "--debug"],
        ["-v", "--debug", "-c", "x.toml", "status", "--json", "--server", "h:1", "--timeout", "2"],
        ["--conf", "x.toml", "status"],
        ["-vc", "x.toml", "room", "volume", "kitchen", "+5"],
        ["room"],
        ["room", "bogus"],
        ["room", "volume", "x", "101"],
        ["group", "join", "g", "a", "b"],
        ["run", "app", "--gain", "-3dB", "--mono"],
        ["run", "--pipe", "p", "--tcp", "tcp://h:1"],
        ["play", "-h"],
    ],
)
def test_the_parser_built_for_one_command_line_parses_it_as_the_whole_one(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    def parse(whole: bool) -> tuple[object, str, str]:
        try:  # the first parse, of build_parser(argv), may print and exit
            result: object = vars(build_parser(None if whole else argv).parse_args(argv))
        except SystemExit as exit_:
            result = exit_.code
        out, err = capsys.readouterr()
        return result, out, err

    assert parse(whole=False) == parse(whole=True)


@pytest.mark.parametrize("columns", [None, "100", "7", "0", "-3", "wide"])
def test_help_is_as_wide_as_shutil_would_make_it(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from broadcaster.cli.parsing import terminal_columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns
