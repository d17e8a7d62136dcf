"""Announcements in chosen rooms: which part of the state is kept and put back."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from broadcaster.announce_rooms import _write_fifo, keep_user_volumes, scene_of
from broadcaster.errors import AnnounceError
from broadcaster.rooms import ServerStatus


def status(volumes: dict[str, int]) -> ServerStatus:
    def client(name: str) -> dict[str, Any]:
        return {
            "id": name,
            "connected": True,
            "host": {"name": name},
            "config": {"name": name, "latency": 0, "volume": {"percent": volumes[name]}},
        }

    return ServerStatus.from_json(
        {
            "server": {
                "server": {"host": {"name": "box"}, "snapserver": {"version": "0.26.0"}},
                "groups": [
                    {
                        "id": "g1",
                        "name": "downstairs",
                        "stream_id": "Main",
                        "muted": False,
                        "clients": [client("kitchen"), client("den")],
                    },
                    {
                        "id": "g2",
                        "name": "",
                        "stream_id": "Main",
                        "muted": True,
                        "clients": [client("attic")],
                    },
                ],
                "streams": [],
            }
        }
    )


def test_the_scene_holds_only_the_chosen_rooms_groups() -> None:
    before = status({"kitchen": 40, "den": 100, "attic": 10})
    scene = scene_of(before, [before.room("kitchen")])
    assert [g.name for g in scene.groups] == ["downstairs"]
    # The room that stays comes first: the group is rebuilt around it.
    assert [r.id for r in scene.groups[0].rooms] == ["den", "kitchen"]


def test_a_volume_the_user_changed_meanwhile_is_kept() -> None:
    before = status({"kitchen": 40, "den": 100, "attic": 10})
    scene = scene_of(before, [before.room("kitchen")])
    now = status({"kitchen": 55, "den": 100, "attic": 10})
    kept = keep_user_volumes(scene, now, before)
    volumes = {r.id: r.volume for r in kept.groups[0].rooms}
    assert volumes == {"kitchen": 55, "den": 100}


def test_a_fifo_nobody_reads_is_given_up_on(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(AnnounceError, match="stopped reading"):
        _write_fifo(str(fifo), b"\0" * 1_000_000, stall=0.2)


def test_the_fifo_gets_all_of_it(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = bytearray()

    def read() -> None:
        with open(fifo, "rb") as pipe:
            while chunk := pipe.read(65536):
                got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    _write_fifo(str(fifo), bytes(range(256)) * 4000)
    reader.join(5)
    assert bytes(got) == bytes(range(256)) * 4000


def test_a_path_that_is_not_a_fifo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(AnnounceError, match="not a fifo"):
        _write_fifo(str(tmp_path / "plain"), b"\0" * 4)
