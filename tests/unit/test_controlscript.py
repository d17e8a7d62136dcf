"""The controlscript's protocol logic (snapcast 0.26 stream plugin).

One test runs the script itself on pipes, as snapserver does (no D-Bus needed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from broadcaster import mpris
from broadcaster.controlscript import (
    ControlScript,
    parse_args,
    snapcast_properties,
    target,
)
from broadcaster.errors import MprisError
from broadcaster.mpris import NowPlaying
from broadcaster.nowplaying import PlayerMatch
from broadcaster.snapserver import source_query
from tests.support.procs import running, wait_until

REPO = Path(__file__).resolve().parents[2]


def test_properties_without_a_player_clear_the_metadata() -> None:
    props = snapcast_properties(None)
    # An absent "metadata" would make snapserver keep the last track.
    assert props["metadata"] == {}
    assert props["playbackStatus"] == "stopped"
    assert props["canControl"] is False


def test_properties_use_snapcast_names_and_units() -> None:
    props = snapcast_properties(
        NowPlaying(
            player="org.mpris.MediaPlayer2.x",
            status="paused",
            title="T",
            artist=("A",),
            album="Al",
            art_url="https://a/b.jpg",
            duration=180.0,
            position=12.0,
            volume=0.456,
            loop="track",
            shuffle=False,
            can_play=True,
            can_control=True,
        )
    )
    assert props["metadata"] == {
        "title": "T",
        "artist": ["A"],
        "album": "Al",
        "artUrl": "https://a/b.jpg",
        "duration": 180.0,
    }
    assert props["volume"] == 46
    assert props["position"] == 12.0
    assert props["loopStatus"] == "track"
    assert props["shuffle"] is False
    assert props["canPlay"]
    assert props["canControl"]
    assert not props["canSeek"]


async def test_ready_first_then_requests_answered_without_a_player() -> None:
    sent: list[dict[str, Any]] = []
    script = ControlScript(None, sent.append)
    await script.start()
    assert sent == [{"jsonrpc": "2.0", "method": "Plugin.Stream.Ready"}]

    reply = await script.handle(
        {"jsonrpc": "2.0", "id": 3, "method": "Plugin.Stream.Player.GetProperties"}
    )
    assert reply is not None
    assert reply["id"] == 3
    assert reply["result"]["metadata"] == {}

    reply = await script.handle(
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "Plugin.Stream.Player.Control",
            "params": {"command": "play"},
        }
    )
    assert reply is not None
    assert reply["error"]["code"] == -32603
    assert "no MPRIS player" in reply["error"]["message"]
    assert reply["error"]["data"] == reply["error"]["message"]  # 0.26 needs a string there

    reply = await script.handle({"jsonrpc": "2.0", "id": 5, "method": "Plugin.Nope"})
    assert reply is not None
    assert reply["error"]["code"] == -32601
    assert await script.handle({"jsonrpc": "2.0", "id": 6, "result": "ok"}) is None
    await script.stop()


def test_snapserver_arguments_are_accepted() -> None:
    args = parse_args(["--stream=Spotify", "--snapcast-port=1780", "--player", "spotify"])
    assert args.stream == "Spotify"
    assert args.player == "spotify"


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--player", "spotify"], {}, PlayerMatch("spotify")),
        ([], {"BROADCASTER_MPRIS_PLAYER": "vlc"}, PlayerMatch("vlc")),
        ([], {"BROADCASTER_MPRIS_PID": "123"}, PlayerMatch(pid=123)),
        (["--pid", "7"], {"BROADCASTER_MPRIS_PLAYER": "vlc"}, PlayerMatch("vlc", 7)),
        ([], {"BROADCASTER_MPRIS_PID": "x"}, None),
        ([], {}, None),
    ],
)
def test_target_from_flags_then_environment(
    argv: list[str], env: dict[str, str], expected: PlayerMatch | None
) -> None:
    args: argparse.Namespace = parse_args(["--stream=s", *argv])
    assert target(args, env) == expected


def test_source_query_names_an_installed_script(tmp_path: Path) -> None:
    good = tmp_path / "bin"
    good.mkdir()
    script = good / "broadcaster-controlscript"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    assert source_query(str(good)) == f"&controlscript={script}"


def test_source_query_is_empty_when_snapserver_could_not_run_it(tmp_path: Path) -> None:
    assert source_query(str(tmp_path)) == ""  # not installed
    spaced = tmp_path / "my bin"
    spaced.mkdir()
    script = spaced / "broadcaster-controlscript"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    assert source_query(str(spaced)) == ""  # snapserver splits its command line on spaces


GET = b'{"jsonrpc":"2.0","id":%d,"method":"Plugin.Stream.Player.GetProperties"}\n'
MALFORMED = [
    b"x" * (3 << 20) + b"\n",  # over the 1 MiB a message may hold
    b"[" * 100_000 + b"\n",  # nested too deeply for the parser
    b'{"jsonrpc":"2.0","id":7,"method":"Plugin.Stream.Player.Control",'
    b'"params":{"command":"seek","params":{"offset":NaN}}}\n',
    b"not json\n",
    b"\xff\xfe\n",  # not UTF-8
    b"[1, 2]\n",
    b'{"jsonrpc":"2.0","id":8}\n',
    b'{"jsonrpc":"2.0","id":9,"method":42}\n',
]


async def test_the_plugin_answers_every_malformed_message_and_keeps_serving(
    tmp_path: Path,
) -> None:
    """The real script on pipes, as snapserver runs it: each bad line gets an error reply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROADCASTER_", "DBUS_"))}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster.controlscript",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        limit=1 << 20,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            ready = json.loads(await proc.stdout.readline())
            assert ready["method"] == "Plugin.Stream.Ready"
            for number, line in enumerate(MALFORMED):
                proc.stdin.write(line + GET % number)
                await proc.stdin.drain()
                error = json.loads(await proc.stdout.readline())
                assert error["error"]["code"] in (-32700, -32600, -32603), line[:40]
                assert isinstance(error["error"]["data"], str)
                reply = json.loads(await proc.stdout.readline())
                assert reply["id"] == number, line[:40]
                assert reply["result"]["metadata"] == {}
            proc.stdin.close()
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("command", "params"),
    [
        ("seek", {"offset": 1e303}),
        ("seek", {"offset": math.nan}),
        ("seek", {"offset": -math.inf}),
        ("seek", {"offset": 10**400}),
        ("setPosition", {"position": 1e300}),
    ],
)
async def test_seek_to_numbers_mpris_cannot_hold_is_refused(
    command: str, params: dict[str, Any]
) -> None:
    # Refused before the bus is touched, so no bus is needed.
    with pytest.raises(MprisError, match="numeric"):
        await mpris.control(cast(Any, None), "org.mpris.MediaPlayer2.x", command, params)


PLUGIN = "from broadcaster.controlscript_entry import run; run()"  # what the console script runs


def test_snapserver_dying_while_the_plugin_loads_takes_the_plugin_with_it(tmp_path: Path) -> None:
    """The parent-death signal is armed before the plugin loads the bulk of its code.

    A module the plugin loads (argparse) is made to stall; its parent dies
    meanwhile; its stdin stays open (snapserver 0.31's other plugins hold it),
    so only the kernel's signal can end it.
    """
    stall = tmp_path / "stall"
    stall.mkdir()
    loading = tmp_path / "loading"
    (stall / "argparse.py").write_text(
        f"import pathlib, time\npathlib.Path({str(loading)!r}).touch()\ntime.sleep(120)\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROADCASTER_", "DBUS_"))}
    env.update(PYTHONPATH=f"{stall}:{REPO}", XDG_RUNTIME_DIR=str(tmp_path))
    snapserver = subprocess.Popen(  # stands for snapserver: starts the plugin, then lives on
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"plugin = subprocess.Popen([sys.executable, '-c', {PLUGIN!r}])\n"
            "print(plugin.pid, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert snapserver.stdout is not None
    plugin = int(snapserver.stdout.readline())
    try:
        wait_until(loading.exists, 20, "the plugin to load its stalled module")
        snapserver.kill()
        snapserver.wait(10)
        wait_until(lambda: not running(plugin), 10, "the plugin to end with its parent")
    finally:
        snapserver.kill()
        snapserver.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.kill(plugin, signal.SIGKILL)
        if snapserver.stdin is not None:
            snapserver.stdin.close()
        snapserver.stdout.close()
