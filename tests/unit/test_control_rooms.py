"""Parsing snapserver's status, name resolution and snapweb's group volume."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster.errors import AmbiguousNameError, NotFoundError
from broadcaster.rooms import Room, ServerStatus, group_volume, scale_group_volume


def _client(cid: str, name: str, host: str, volume: int, connected: bool = True) -> dict[str, Any]:
    return {
        "id": cid,
        "connected": connected,
        "config": {"name": name, "latency": 5, "volume": {"percent": volume, "muted": False}},
        "host": {"name": host, "ip": "10.0.0.9"},
    }


STATUS = {
    "server": {
        "server": {"snapserver": {"version": "0.26.0", "controlProtocolVersion": 1}},
        "groups": [
            {
                "id": "g1",
                "name": "Downstairs",
                "muted": False,
                "stream_id": "Main",
                "clients": [
                    _client("aa:01", "Küche 🎵", "kitchen-pi", 80),
                    _client("aa:02", "", "living", 40),
                ],
            },
            {
                "id": "g2",
                "name": "",
                "muted": True,
                "stream_id": "Radio",
                "clients": [_client("aa:03", "Bath", "pi", 10), _client("aa:04", "bath", "pi", 0)],
            },
        ],
        "streams": [
            {
                "id": "Main",
                "status": "playing",
                "uri": {"scheme": "pipe", "path": "/tmp/fifo", "query": "name=Main&codec=flac"},
                "properties": {"metadata": {"title": "Song"}},
            },
            {"id": "Radio", "status": "idle", "uri": {"scheme": "tcp", "query": {"codec": "pcm"}}},
        ],
    }
}


def status() -> ServerStatus:
    return ServerStatus.from_json(STATUS)


def test_status_is_parsed_into_frozen_values() -> None:
    s = status()
    assert s.server.version == "0.26.0"
    assert [r.name for r in s.rooms] == ["Küche 🎵", "living", "Bath", "bath"]
    assert s.rooms[1].configured_name == ""
    assert s.groups[1].label == "Bath, bath"
    assert s.streams[0].codec == "flac"
    assert s.streams[0].metadata == {"title": "Song"}
    assert s.rooms[0].stream_id == "Main"
    with pytest.raises(AttributeError):
        s.rooms[0].volume = 3  # type: ignore[misc]
    assert s.to_json()["rooms"][0]["name"] == "Küche 🎵"


def test_rooms_by_id_name_host_and_case() -> None:
    s = status()
    assert s.room("aa:02").id == "aa:02"
    assert s.room("küche 🎵").id == "aa:01"
    assert s.room("kitchen-pi").id == "aa:01"
    assert s.room("living").id == "aa:02"
    assert s.room("Bath").id == "aa:03"  # the exact match wins over the folded one


def test_unknown_and_ambiguous_list_candidates() -> None:
    s = status()
    with pytest.raises(NotFoundError, match="no room 'Attic'") as err:
        s.room("Attic")
    assert "'Küche 🎵' (id aa:01)" in str(err.value)
    with pytest.raises(AmbiguousNameError, match=r"id aa:03.*id aa:04"):
        s.room("pi")
    with pytest.raises(AmbiguousNameError):
        s.room("BATH")


def test_groups_by_name_or_room() -> None:
    s = status()
    assert s.group("downstairs").id == "g1"
    assert s.group("Bath").id == "g2"
    with pytest.raises(NotFoundError, match="no group or room 'x'"):
        s.group("x")
    assert s.stream("Main").id == "Main"
    with pytest.raises(NotFoundError, match="no stream"):
        s.stream("Jazz")


def _room(rid: str, volume: int, connected: bool = True) -> Room:
    return Room(rid, rid, "", "h", "", connected, volume, False, 0, "g", "s")


def test_group_volume_is_the_mean_of_connected_rooms() -> None:
    assert group_volume([_room("a", 80), _room("b", 40), _room("c", 0, connected=False)]) == 60
    assert group_volume([_room("a", 30, connected=False)]) == 30
    assert group_volume([]) == 0


@pytest.mark.parametrize(
    ("volumes", "target", "expected"),
    [
        ([80, 40], 30, [40, 20]),  # down: each keeps (30/60) of its volume
        ([40, 20], 65, [70, 60]),  # up: each gains (35/70) of its headroom
        ([80, 40], 0, [0, 0]),
        ([80, 40], 100, [100, 100]),
        ([80, 40], 60, [80, 40]),
        ([0, 0], 50, [50, 50]),
        ([100, 100], 20, [20, 20]),
    ],
)
def test_group_volume_scales_like_snapweb(
    volumes: list[int], target: int, expected: list[int]
) -> None:
    rooms = [_room(str(i), v) for i, v in enumerate(volumes)]
    result = scale_group_volume(rooms, target)
    assert [result[str(i)] for i in range(len(volumes))] == expected


def test_disconnected_rooms_are_left_alone() -> None:
    result = scale_group_volume([_room("a", 80), _room("b", 40, connected=False)], 40)
    assert result == {"a": 40}
