"""Room control against a real snapserver (0.26 on Debian 12, 0.31 on Debian 13)
with three real snapclient rooms.

Every command runs as the real CLI (``python -m broadcaster``) and its effect
is read back from the server with an independent ``Server.GetStatus``
(:meth:`SnapServer.status`).  The library is tested for what the CLI cannot
show: notifications, a hung (SIGSTOPped) server, a restarted one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.control import CONNECT_EVENT, DISCONNECT_EVENT, Event, SnapControl
from broadcaster.errors import ControlConnectionError, ControlTimeoutError, ServerReplyError
from tests.support.procs import await_until, free_port, wait_until
from tests.support.snapserver import SnapClient, SnapServer, snap_house

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KITCHEN = "Küche 🎵"


@pytest.fixture
def server(tmp_path: Path, snap_tools: None) -> Iterator[SnapServer]:
    """A snapserver with streams ``Main`` and ``Second`` and three rooms."""
    with snap_house(tmp_path, "Main", "Second", rooms=3, timeout=30) as house:
        yield house.server


def cli(
    server: SnapServer, *args: str, state: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["BROADCASTER_CONFIG"] = os.devnull
    if state is not None:
        env["XDG_STATE_HOME"] = str(state)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "broadcaster",
            *args,
            "--server",
            f"127.0.0.1:{server.control_port}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        check=False,
    )


def address(server: SnapServer) -> str:
    return f"127.0.0.1:{server.control_port}"


def volumes(server: SnapServer) -> dict[str, int]:
    return {i: int(c["config"]["volume"]["percent"]) for i, c in rooms(server).items()}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def rooms(server: SnapServer) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for g in server.status()["groups"] for c in g["clients"]}


def group_of(server: SnapServer, room_id: str) -> dict[str, Any]:
    for group in server.status()["groups"]:
        if any(c["id"] == room_id for c in group["clients"]):
            return dict(group)
    raise AssertionError(f"{room_id} is in no group")


def test_status_table_and_json(server: SnapServer) -> None:
    table = ok(cli(server, "status"))
    assert "room1" in table
    assert "Main" in table
    assert "48000:16:2" in table
    data = json.loads(ok(cli(server, "status", "--json")))
    assert {r["id"] for r in data["rooms"]} == {"room1", "room2", "room3"}
    assert all(r["connected"] for r in data["rooms"])
    assert {s["id"]: s["codec"] for s in data["streams"]} == {"Main": "pcm", "Second": "pcm"}
    # The version of the server that answers, whichever release it is.
    assert data["server"]["version"] == server.version()


def test_room_commands_change_the_server(server: SnapServer) -> None:
    ok(cli(server, "room", "rename", "room1", KITCHEN))
    assert rooms(server)["room1"]["config"]["name"] == KITCHEN
    # The room is now found by its non-ASCII name, case-insensitively.
    ok(cli(server, "room", "volume", "KÜCHE 🎵", "40"))
    assert rooms(server)["room1"]["config"]["volume"]["percent"] == 40
    ok(cli(server, "room", "volume", KITCHEN, "+5"))
    assert rooms(server)["room1"]["config"]["volume"]["percent"] == 45
    ok(cli(server, "room", "volume", KITCHEN, "-50"))
    assert rooms(server)["room1"]["config"]["volume"]["percent"] == 0
    ok(cli(server, "room", "mute", "room2"))
    assert rooms(server)["room2"]["config"]["volume"]["muted"] is True
    ok(cli(server, "room", "unmute", "room2"))
    assert rooms(server)["room2"]["config"]["volume"]["muted"] is False
    out = json.loads(ok(cli(server, "room", "latency", "room3", "120", "--json")))
    assert out["latency"] == 120
    assert rooms(server)["room3"]["config"]["latency"] == 120
    out = json.loads(ok(cli(server, "room", "latency", "room3", "-250", "--json")))
    assert out["latency"] == rooms(server)["room3"]["config"]["latency"] == -250
    # What snapserver kept: at most its stream buffer.
    kept = json.loads(ok(cli(server, "room", "latency", "room3", "9000", "--json")))["latency"]
    assert kept == rooms(server)["room3"]["config"]["latency"] < 9000
    refused = cli(server, "room", "latency", "room3", "-20000")
    assert refused.returncode != 0
    assert "-10000 to 10000" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_room_delete_forgets_a_disconnected_room(server: SnapServer, tmp_path: Path) -> None:
    extra = SnapClient(server, "roomX", tmp_path / "roomX.raw")
    extra.start()
    try:
        wait_until(lambda: "roomX" in rooms(server), 20, "roomX to connect")
    finally:
        extra.stop()
    wait_until(lambda: not rooms(server)["roomX"]["connected"], 20, "roomX to disconnect")
    ok(cli(server, "room", "delete", "roomX"))
    assert "roomX" not in rooms(server)


def test_unknown_and_ambiguous_names_list_candidates(server: SnapServer) -> None:
    unknown = cli(server, "room", "volume", "Attic", "10")
    assert unknown.returncode == 1
    assert unknown.stderr.count("\n") == 1
    assert "Traceback" not in unknown.stderr
    assert "no room 'Attic'" in unknown.stderr
    assert "room1" in unknown.stderr
    # All three rooms run on this host: its name matches all of them.
    host = rooms(server)["room1"]["host"]["name"]
    ambiguous = cli(server, "room", "mute", host)
    assert ambiguous.returncode == 1
    assert "ambiguous" in ambiguous.stderr
    assert all(f"id room{i}" in ambiguous.stderr for i in (1, 2, 3))
    bad = cli(server, "room", "volume", "room1", "150")
    assert bad.returncode == 2
    assert "not a volume" in bad.stderr
    unknown_stream = cli(server, "group", "stream", "room1", "Nope")
    assert unknown_stream.returncode == 1
    assert "no stream 'Nope'" in unknown_stream.stderr


def test_a_name_with_a_line_break_stays_on_its_line(server: SnapServer) -> None:
    """Any client may name a room (Client.SetName takes any string, though
    broadcaster's rename refuses it): a line break or tab in it is shown
    escaped, so a name cannot forge a row of the table or a second line of a
    one-line answer."""
    forged = "Evil\nroom9  host  room9  yes\tx"
    server.rpc("Client.SetName", {"id": "room1", "name": forged})
    changed = ok(cli(server, "room", "volume", "room1", "100"))
    shown = r"Evil\x0aroom9  host  room9  yes\x09x"
    assert changed.splitlines() == [f"{shown}: volume 100, latency 0 ms"]
    table = ok(cli(server, "status")).splitlines()
    assert not any(line.startswith("room9") for line in table), table
    assert len([line for line in table if "room1" in line]) == 1
    joined = ok(cli(server, "group", "join", "room1", "room2"))
    assert len(joined.splitlines()) == 1, joined


@pytest.mark.parametrize("name", ["   ", "a\x1b[2Jb", "two\nlines", "x" * 201])
def test_a_name_no_one_could_read_is_refused(server: SnapServer, name: str) -> None:
    """The rules of the API's PUT /api/rooms/{room}/name (1 to 200 characters,
    outer spaces dropped) and no control characters, for rooms and groups."""
    for argv in (["room", "rename", "room1", name], ["group", "rename", "room1", name]):
        refused = cli(server, *argv)
        assert refused.returncode == 1, refused
        assert "a name is 1 to 200 characters without control characters" in refused.stderr
        assert len(refused.stderr.splitlines()) == 1
    assert rooms(server)["room1"]["config"]["name"] == ""
    assert group_of(server, "room1")["name"] == ""
    ok(cli(server, "room", "rename", "room1", " Küche 🎵 "))
    assert rooms(server)["room1"]["config"]["name"] == KITCHEN
    ok(cli(server, "room", "rename", "room1", ""))  # back to the host name
    assert rooms(server)["room1"]["config"]["name"] == ""


def test_group_commands_change_the_server(server: SnapServer) -> None:
    ok(cli(server, "group", "join", "room1", "room2", "room3"))
    group = group_of(server, "room1")
    assert {c["id"] for c in group["clients"]} == {"room1", "room2", "room3"}
    ok(cli(server, "group", "rename", "room1", "Downstairs ☕"))
    assert group_of(server, "room2")["name"] == "Downstairs ☕"
    ok(cli(server, "group", "stream", "Downstairs ☕", "Second"))
    assert group_of(server, "room3")["stream_id"] == "Second"
    ok(cli(server, "group", "mute", "Downstairs ☕"))
    assert group_of(server, "room1")["muted"] is True
    ok(cli(server, "group", "unmute", "Downstairs ☕"))
    assert group_of(server, "room1")["muted"] is False
    ok(cli(server, "group", "leave", "room3"))
    assert {c["id"] for c in group_of(server, "room1")["clients"]} == {"room1", "room2"}
    assert [c["id"] for c in group_of(server, "room3")["clients"]] == ["room3"]


def test_group_volume_scales_rooms_like_snapweb(server: SnapServer) -> None:
    ok(cli(server, "group", "join", "room1", "room2"))
    ok(cli(server, "room", "volume", "room1", "80"))
    ok(cli(server, "room", "volume", "room2", "40"))
    # Group volume is 60; down to 30 halves every room.
    out = json.loads(ok(cli(server, "group", "volume", "room1", "30", "--json")))
    assert out["volume"] == 30
    now = rooms(server)
    assert (
        now["room1"]["config"]["volume"]["percent"],
        now["room2"]["config"]["volume"]["percent"],
    ) == (40, 20)
    # Up from 30 to 65: each room gains half of its headroom to 100.
    ok(cli(server, "group", "volume", "room2", "+35"))
    now = rooms(server)
    assert (
        now["room1"]["config"]["volume"]["percent"],
        now["room2"]["config"]["volume"]["percent"],
    ) == (70, 60)
    assert now["room3"]["config"]["volume"]["percent"] == 100  # another group: untouched


def test_party_puts_every_room_on_one_stream(server: SnapServer) -> None:
    ok(cli(server, "party", "Second"))
    groups = server.status()["groups"]
    full = [g for g in groups if g["clients"]]
    assert len(full) == 1
    assert {c["id"] for c in full[0]["clients"]} == {"room1", "room2", "room3"}
    assert full[0]["stream_id"] == "Second"


def test_scene_save_and_restore(server: SnapServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    ok(cli(server, "group", "join", "room1", "room2"))
    ok(cli(server, "group", "stream", "room3", "Second"))
    ok(cli(server, "room", "volume", "room1", "33"))
    ok(cli(server, "room", "rename", "room2", KITCHEN))
    ok(cli(server, "scene", "save", "evening ✨", state=state))
    saved = json.loads((state / "broadcaster" / "scenes.json").read_text(encoding="utf-8"))
    assert "evening ✨" in saved["scenes"]

    ok(cli(server, "party", "Main"))
    ok(cli(server, "room", "volume", "room1", "90"))
    ok(cli(server, "group", "mute", "room1"))
    ok(cli(server, "scene", "restore", "evening ✨", state=state))

    assert {c["id"] for c in group_of(server, "room1")["clients"]} == {"room1", "room2"}
    assert group_of(server, "room1")["stream_id"] == "Main"
    assert group_of(server, "room1")["muted"] is False
    assert [c["id"] for c in group_of(server, "room3")["clients"]] == ["room3"]
    assert group_of(server, "room3")["stream_id"] == "Second"
    assert rooms(server)["room1"]["config"]["volume"]["percent"] == 33
    listing = ok(cli(server, "scene", "list", state=state))
    assert "evening ✨" in listing
    missing = cli(server, "scene", "restore", "nope", state=state)
    assert missing.returncode == 1
    assert "no scene 'nope'" in missing.stderr


def test_a_scene_whose_stream_is_gone_restores_the_rest(server: SnapServer, tmp_path: Path) -> None:
    """A scene saved on a stream the server no longer has (one added at run time
    and removed, a changed configuration): the group keeps its stream, is named
    in the output, and every other setting of the scene is still put back."""
    state = tmp_path / "state"
    ok(cli(server, "group", "join", "room1", "room2"))
    ok(cli(server, "group", "stream", "room1", "Second"))
    ok(cli(server, "room", "volume", "room1", "33"))
    ok(cli(server, "room", "volume", "room3", "44"))
    ok(cli(server, "scene", "save", "evening", state=state))
    path = state / "broadcaster" / "scenes.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    for group in saved["scenes"]["evening"]["groups"]:
        if group["stream_id"] == "Second":
            group["stream_id"] = "Gone"
    path.write_text(json.dumps(saved), encoding="utf-8")

    ok(cli(server, "party", "Main"))
    ok(cli(server, "room", "volume", "room1", "90"))
    ok(cli(server, "room", "volume", "room3", "90"))
    restored = cli(server, "scene", "restore", "evening", "--json", state=state)
    assert json.loads(ok(restored))["missing_streams"] == ["Gone"]
    assert {c["id"] for c in group_of(server, "room1")["clients"]} == {"room1", "room2"}
    assert group_of(server, "room1")["stream_id"] == "Main"  # kept: Gone is gone
    assert [c["id"] for c in group_of(server, "room3")["clients"]] == ["room3"]
    assert volumes(server)["room1"] == 33
    assert volumes(server)["room3"] == 44
    text = ok(cli(server, "scene", "restore", "evening", state=state))
    assert "streams no longer known: Gone" in text


async def test_server_errors_reach_the_caller(server: SnapServer) -> None:
    async with SnapControl("127.0.0.1", server.control_port, timeout=5) as snap:
        with pytest.raises(ServerReplyError, match=r"Client\.SetVolume"):
            await snap.set_room_volume("no-such-room", 10)
        status = await snap.status()
        with pytest.raises(ServerReplyError):
            await snap.set_group_stream(status.groups[0].id, "no-such-stream")
        # Nothing was changed behind the error.
        assert (await snap.status()).groups[0].stream_id == status.groups[0].stream_id


async def test_many_notifications_with_non_ascii_names(server: SnapServer) -> None:
    """Hundreds of notifications, some with long multi-byte names that span TCP reads."""
    received: list[Event] = []
    long_name = KITCHEN * 3000  # ~30 kB of multi-byte text per notification
    async with (
        SnapControl("127.0.0.1", server.control_port, timeout=10) as watcher,
        SnapControl("127.0.0.1", server.control_port, timeout=10) as actor,
    ):
        watcher.subscribe(received.append)
        for i in range(300):
            await actor.set_room_volume(f"room{1 + i % 3}", i % 101)
        for i in range(10):
            await actor.set_room_name("room1", f"{long_name}{i}")

        async def all_seen() -> bool:
            names = [e for e in received if e.method == "Client.OnNameChanged"]
            volumes = [e for e in received if e.method == "Client.OnVolumeChanged"]
            return len(volumes) >= 300 and len(names) >= 10

        await await_until(all_seen, 30, "every notification")
        assert watcher.connected
        names = [e.params["name"] for e in received if e.method == "Client.OnNameChanged"]
        assert names[-1] == f"{long_name}9"
        status = await watcher.status()
        assert status.room("room1").name == f"{long_name}9"


def test_watch_prints_one_line_per_event(server: SnapServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["BROADCASTER_CONFIG"] = os.devnull
    out = tmp_path / "watch.out"
    argv = [
        sys.executable,
        "-m",
        "broadcaster",
        "watch",
        "--count",
        "4",
        "--server",
        f"127.0.0.1:{server.control_port}",
    ]
    with out.open("w") as handle:
        watch = subprocess.Popen(argv, stdout=handle, stderr=subprocess.PIPE, cwd=REPO, env=env)
        try:
            # The first line is the connect event: then the watcher is subscribed.
            wait_until(lambda: CONNECT_EVENT in out.read_text(encoding="utf-8"), 20, "watch")
            server.rpc("Client.SetVolume", {"id": "room1", "volume": {"percent": 17}})
            server.rpc("Client.SetName", {"id": "room2", "name": KITCHEN})
            server.rpc("Client.SetLatency", {"id": "room3", "latency": 30})
            assert watch.wait(30) == 0
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert "Client.OnVolumeChanged room1 muted=False percent=17" in lines[1]
    assert f"Client.OnNameChanged room2 name={KITCHEN}" in lines[2]
    assert "Client.OnLatencyChanged room3 latency=30" in lines[3]


def test_status_without_a_config_file_reads_the_same(server: SnapServer, tmp_path: Path) -> None:
    """No config file, the server in $BROADCASTER_SERVER: config.py is not loaded
    (the quick path a user without a config file takes); the same status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "no-config")
    env["BROADCASTER_SERVER"] = address(server)
    result = subprocess.run(
        [sys.executable, "-m", "broadcaster", "status", "--json"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False,
    )  # fmt: skip
    quick = json.loads(ok(result))
    configured = json.loads(ok(cli(server, "status", "--json")))
    assert quick == configured
    assert {r["id"] for r in quick["rooms"]} == {"room1", "room2", "room3"}


async def test_hung_server_times_out_within_the_deadline(server: SnapServer) -> None:
    version = server.version()
    async with SnapControl("127.0.0.1", server.control_port, timeout=1.5) as snap:
        server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(ControlTimeoutError, match="did not answer"):
                await snap.status()
            assert time.monotonic() - started < 3
            # The CLI: one line, exit 1, within its --timeout (plus start-up).
            started = time.monotonic()
            result = await asyncio.to_thread(cli, server, "status", "--timeout", "1.5")
            assert result.returncode == 1
            assert "did not answer within 1.5 s" in result.stderr
            assert result.stderr.count("\n") == 1
            assert time.monotonic() - started < 10
        finally:
            server.resume()
        # The same connection answers again once the server does.
        assert (await snap.status()).server.version == version


async def test_restarted_server_is_reconnected(server: SnapServer) -> None:
    events: list[str] = []
    async with SnapControl("127.0.0.1", server.control_port, timeout=3, reconnect=True) as snap:
        snap.subscribe(lambda e: events.append(e.method))
        server.stop()
        await await_until(
            lambda: asyncio.sleep(0, DISCONNECT_EVENT in events), 10, "the disconnect"
        )
        with pytest.raises(ControlConnectionError):
            await snap.status()
        await asyncio.to_thread(server.start)
        await snap.wait_connected(30)
        status = await snap.status()
        assert {r.id for r in status.rooms} >= {"room1", "room2", "room3"}
        assert events.count(CONNECT_EVENT) == 1
        assert events.count(DISCONNECT_EVENT) == 1
        # Notifications flow on the new connection.
        await asyncio.to_thread(
            server.rpc, "Client.SetVolume", {"id": "room1", "volume": {"percent": 12}}
        )
        await await_until(
            lambda: asyncio.sleep(0, "Client.OnVolumeChanged" in events), 10, "a notification"
        )


async def test_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(ControlConnectionError, match=f"127.0.0.1:{port}"):
        async with SnapControl("127.0.0.1", port, timeout=2):
            pass


def test_watch_follows_a_restarted_server(server: SnapServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["BROADCASTER_CONFIG"] = os.devnull
    out = tmp_path / "watch.out"
    argv = [sys.executable, "-m", "broadcaster", "watch", "--json", "--server", address(server)]
    with out.open("w") as handle:
        watch = subprocess.Popen(argv, stdout=handle, stderr=subprocess.DEVNULL, cwd=REPO, env=env)
        try:

            def methods() -> list[str]:
                text = out.read_text(encoding="utf-8")
                return [json.loads(line)["method"] for line in text.splitlines()]

            wait_until(lambda: CONNECT_EVENT in methods(), 20, "watch to connect")
            server.stop()
            wait_until(lambda: DISCONNECT_EVENT in methods(), 20, "watch to see the loss")
            server.start()
            wait_until(lambda: methods().count(CONNECT_EVENT) == 2, 30, "watch to reconnect")
            server.rpc("Client.SetVolume", {"id": "room1", "volume": {"percent": 21}})
            wait_until(lambda: "Client.OnVolumeChanged" in methods(), 20, "a notification after it")
            assert watch.poll() is None
        finally:
            watch.terminate()
            watch.wait(10)
