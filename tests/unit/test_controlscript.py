"""The controlscript's protocol logic (snapcast 0.26 stream plugin), no processes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from broadcaster.controlscript import (
    ControlScript,
    parse_args,
    snapcast_properties,
    target,
)
from broadcaster.mpris import NowPlaying
from broadcaster.nowplaying import PlayerMatch
from broadcaster.snapserver import source_query


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
