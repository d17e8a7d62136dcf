"""Pure parts of broadcaster.mpris: matching a player, reading its properties."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from broadcaster.mpris import CAPABILITIES, capability_key, parse_player
from broadcaster.nowplaying import PlayerMatch, read_target, target_path, write_target


def test_match_by_bus_name_instance_and_identity() -> None:
    match = PlayerMatch("Spotify")
    assert match.name_matches("org.mpris.MediaPlayer2.spotify")
    assert match.name_matches("org.mpris.MediaPlayer2.spotify.instance4242")
    assert match.name_matches("org.mpris.MediaPlayer2.chromium.instance7", identity="Spotify")
    assert not match.name_matches("org.mpris.MediaPlayer2.spotifyd")
    assert not match.name_matches("org.mpris.MediaPlayer2.vlc", identity="VLC media player")


def test_match_by_pid_follows_parents_and_children() -> None:
    me, parent = os.getpid(), os.getppid()
    assert PlayerMatch(pid=me).pid_matches(me)
    # The app's audio runs in a child of the process owning the MPRIS name, or the other way.
    assert PlayerMatch(pid=me).pid_matches(parent)
    assert PlayerMatch(pid=parent).pid_matches(me)
    assert not PlayerMatch(pid=me).pid_matches(None)
    assert not PlayerMatch(pid=me).pid_matches(1)
    assert not PlayerMatch(app="x").pid_matches(me)


def test_match_needs_a_name_or_a_pid() -> None:
    with pytest.raises(ValueError, match="app name or a process id"):
        PlayerMatch()


def test_parse_player_converts_units_and_names() -> None:
    playing = parse_player(
        "org.mpris.MediaPlayer2.spotify",
        "Spotify",
        {
            "PlaybackStatus": "Playing",
            "LoopStatus": "Playlist",
            "Shuffle": True,
            "Volume": 0.25,
            "Position": 61_500_000,
            "CanGoNext": True,
            "CanControl": True,
            "Metadata": {
                "mpris:trackid": "/com/spotify/track/1",
                "mpris:length": 200_000_000,
                "mpris:artUrl": "https://i.scdn.co/image/x",
                "xesam:title": "Song",
                "xesam:artist": ["A", "B"],
                "xesam:album": "Album",
                "xesam:albumArtist": "A",
            },
        },
    )
    assert playing.status == "playing"
    assert playing.loop == "playlist"
    assert playing.shuffle is True
    assert playing.position == pytest.approx(61.5)
    assert playing.duration == pytest.approx(200.0)
    assert playing.title == "Song"
    assert playing.artist == ("A", "B")
    assert playing.album_artist == ("A",)
    assert playing.art_url == "https://i.scdn.co/image/x"
    assert playing.can_go_next
    assert playing.can_control
    assert not playing.can_seek


def test_parse_player_tolerates_a_sloppy_player() -> None:
    playing = parse_player(
        "org.mpris.MediaPlayer2.odd",
        "",
        {
            "PlaybackStatus": "Buffering",
            "Metadata": {"xesam:title": "", "mpris:length": 0, "xesam:artist": [1, "X"]},
            "Volume": True,
            "CanPlay": 1,
        },
    )
    assert playing.status == "stopped"
    assert playing.title is None
    assert playing.duration is None
    assert playing.artist == ("X",)
    assert playing.volume is None
    assert playing.can_play is False


def test_target_file_round_trip(tmp_path: Path) -> None:
    assert read_target("Spotify", tmp_path) is None
    write_target("Spotify", PlayerMatch("spotify", 42), tmp_path)
    assert read_target("Spotify", tmp_path) == PlayerMatch("spotify", 42)
    write_target("Spotify", None, tmp_path)
    assert read_target("Spotify", tmp_path) is None
    target_path("x", tmp_path).write_text("[1, 2", encoding="utf-8")
    assert read_target("x", tmp_path) is None


def test_target_path_stays_in_its_directory(tmp_path: Path) -> None:
    path = target_path("../../etc/passwd", tmp_path)
    assert path.parent == tmp_path / "now-playing"


def test_capabilities_go_by_mpris_and_snapcast_names() -> None:
    assert [capability_key(c, "Can") for c in CAPABILITIES] == [
        "CanPlay", "CanPause", "CanGoNext", "CanGoPrevious", "CanSeek", "CanControl",
    ]  # fmt: skip
    assert capability_key("go_previous", "can") == "canGoPrevious"
    player = parse_player("p", "", {"CanGoPrevious": True, "CanSeek": 1, "CanPlay": "true"})
    assert (player.can_go_previous, player.can_seek, player.can_play) == (True, False, False)
