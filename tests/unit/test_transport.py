"""Transport commands, the player view, the position clock and local covers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cli.transport import pick_stream
from broadcaster.cover import MAX_BYTES, image_type, local_path, read_cover_sync
from broadcaster.errors import (
    AmbiguousNameError,
    ConfigError,
    CoverError,
    CoverMissingError,
    PlayerCannotError,
)
from broadcaster.rooms import ServerStatus, StreamInfo
from broadcaster.transport import PlayerClock, allows, art_link, from_properties, plan, to_json

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40

PROPS: dict[str, Any] = {
    "playbackStatus": "playing",
    "canControl": True,
    "canPlay": True,
    "canPause": True,
    "canGoNext": True,
    "canGoPrevious": False,
    "canSeek": False,
    "position": 10.0,
    "metadata": {
        "title": "Song",
        "artist": ["A", "B"],
        "duration": 180.0,
        "artUrl": "file:///tmp/x.png",
    },
}


def stream(props: dict[str, Any], sid: str = "app") -> StreamInfo:
    return StreamInfo.from_status({"id": sid, "status": "idle", "properties": props})


def test_player_from_properties_and_what_it_allows() -> None:
    player = from_properties(PROPS, elapsed=5.0)
    assert player.title == "Song"
    assert player.artist == ("A", "B")
    assert player.position == 15.0  # playing: moved on by the time since it was read
    assert allows(player, "pause")
    assert allows(player, "toggle")
    assert allows(player, "next")
    assert not allows(player, "previous")
    assert not allows(player, "seek")
    view = to_json(player, "app")
    assert view["can"]["next"] is True
    assert view["can"]["position"] is False
    assert view["art"].startswith("/api/streams/app/art?v=")


def test_a_paused_position_stays_and_a_playing_one_stops_at_the_end() -> None:
    paused = from_properties({**PROPS, "playbackStatus": "paused"}, elapsed=60)
    assert paused.position == 10.0
    assert from_properties(PROPS, elapsed=1000).position == 180.0


def test_no_player_allows_nothing() -> None:
    player = from_properties({})
    assert player.status == "stopped"
    assert not any(to_json(player, "s")["can"].values())
    with pytest.raises(PlayerCannotError, match="has no player to control"):
        plan(stream({}), player, "play")


def test_a_stream_without_a_controlscript_says_so() -> None:
    """snapserver's default stream (Debian's ``/tmp/snapfifo``) has no controlscript:
    an app is captured into it, but no player can reach it; the error says why."""
    bare = StreamInfo.from_status(
        {"id": "default", "status": "playing", "uri": {"query": {"name": "default"}}}
    )
    with pytest.raises(PlayerCannotError, match="its snapserver source has no controlscript"):
        plan(bare, from_properties({}), "pause")
    scripted = StreamInfo.from_status(
        {"id": "app", "status": "idle", "uri": {"query": {"controlscript": "/x"}}}
    )
    with pytest.raises(PlayerCannotError, match="nothing with an MPRIS player") as err:
        plan(scripted, from_properties({}), "pause")
    assert "controlscript" not in str(err.value)


def test_plan_refuses_what_the_player_cannot_and_builds_stream_control() -> None:
    info = stream(PROPS)
    player = from_properties(PROPS)
    with pytest.raises(PlayerCannotError, match="cannot go back to the previous track"):
        plan(info, player, "previous")
    with pytest.raises(PlayerCannotError, match="cannot seek"):
        plan(info, player, "seek", 5)
    with pytest.raises(ConfigError, match="unknown command"):
        plan(info, player, "rewind")
    assert plan(info, player, "toggle") == {"id": "app", "command": "playPause"}
    seekable = from_properties({**PROPS, "canSeek": True})
    assert plan(info, seekable, "seek", -10) == {
        "id": "app",
        "command": "seek",
        "params": {"offset": -10},
    }
    assert plan(info, seekable, "position", 42)["params"] == {"position": 42}
    with pytest.raises(ConfigError, match="needs a number"):
        plan(info, seekable, "position")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e303, -1e14])
def test_plan_refuses_positions_no_player_can_hold(value: float) -> None:
    """NaN, Infinity and offsets beyond MPRIS's int64 microseconds are bad input
    (400), not a message snapserver cannot parse and never answers."""
    seekable = from_properties({**PROPS, "canSeek": True})
    for command in ("seek", "position"):
        with pytest.raises(ConfigError, match="seconds"):
            plan(stream(PROPS), seekable, command, value)


def test_toggle_needs_play_when_paused() -> None:
    props = {**PROPS, "playbackStatus": "paused", "canPlay": False}
    assert not allows(from_properties(props), "toggle")


def test_art_links() -> None:
    assert art_link("s", "https://i.scdn.co/image/ab") == "https://i.scdn.co/image/ab"
    assert str(art_link("a b", "file:///x.png")).startswith("/api/streams/a%20b/art?v=")
    assert art_link("s", "file:///x.png") != art_link("s", "file:///y.png")
    assert art_link("s", "data:image/png;base64,AAAA") is None
    assert art_link("s", "") is None


def test_player_clock_ages_only_changed_properties() -> None:
    now = [100.0]
    clock = PlayerClock(lambda: now[0])
    status = {"streams": [{"id": "app", "properties": PROPS}]}
    clock.update(status)
    now[0] = 104.0
    clock.update(status)  # an unrelated change (a volume): same properties
    assert clock.elapsed("app") == 4.0
    assert clock.player("app", PROPS).position == 14.0
    clock.update({"streams": [{"id": "app", "properties": {**PROPS, "position": 50.0}}]})
    assert clock.elapsed("app") == 0.0
    assert clock.elapsed("unknown") == 0.0


def test_pick_stream() -> None:
    def status(*streams: dict[str, Any]) -> ServerStatus:
        return ServerStatus.from_json({"server": {"groups": [], "streams": list(streams)}})

    one = {"id": "only", "properties": {}}
    controllable = {"id": "app", "properties": {"canControl": True}}
    plain = {"id": "plain", "properties": {}}
    assert pick_stream(status(one), None).id == "only"
    assert pick_stream(status(plain, controllable), None).id == "app"
    assert pick_stream(status(plain, controllable), "plain").id == "plain"
    # Announcements' own stream (broadcaster run's snapserver has it) does not count.
    announce = {"id": "broadcaster-announce", "properties": {}}
    assert pick_stream(status(one, announce), None).id == "only"
    with pytest.raises(AmbiguousNameError, match="name the stream"):
        pick_stream(status(plain, one), None)


# --- covers ---------------------------------------------------------------------------


def test_image_types_by_their_first_bytes() -> None:
    assert image_type(PNG) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"GIF89a...") == "image/gif"
    assert image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg xmlns=...") is None
    assert image_type(b"root:x:0:0") is None


def test_local_path_only_for_this_machine() -> None:
    assert local_path("file:///tmp/a%20b.png") == "/tmp/a b.png"
    assert local_path("file://localhost/tmp/a.png") == "/tmp/a.png"
    for url in ("file://otherhost/x.png", "https://x/y.png", "file:relative.png"):
        with pytest.raises(CoverError):
            local_path(url)


def test_read_cover_serves_images_and_refuses_the_rest(tmp_path: Path) -> None:
    good = tmp_path / "cover.png"
    good.write_bytes(PNG)
    assert read_cover_sync(good.as_uri()).content_type == "image/png"
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(CoverError, match="not a PNG"):
        read_cover_sync(text.as_uri())
    link = tmp_path / "link.png"
    link.symlink_to(text)
    with pytest.raises(CoverError, match="not a PNG"):
        read_cover_sync(link.as_uri())
    with pytest.raises(CoverError, match="not a regular file"):
        read_cover_sync(tmp_path.as_uri())
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(CoverError, match="not a regular file"):
        read_cover_sync(fifo.as_uri())  # and no hang waiting for a writer
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * MAX_BYTES)
    with pytest.raises(CoverError, match="larger than"):
        read_cover_sync(big.as_uri())
    with pytest.raises(CoverMissingError):
        read_cover_sync((tmp_path / "gone.png").as_uri())
