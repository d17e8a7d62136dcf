"""Reading PipeWire's graph and planning moves: pure logic on pw-dump shaped data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from broadcaster.errors import PipeWireError
from broadcaster.pipewire import Graph, PipeWire, TargetApp, merge_dump, parse_dump
from broadcaster.proc import process_lineage
from broadcaster.routing import Router, plan, sink_name_for


def node(oid: int, serial: int, media_class: str, name: str, **props: Any) -> dict[str, Any]:
    return {
        "id": oid,
        "type": "PipeWire:Interface:Node",
        "info": {
            "props": {
                "media.class": media_class,
                "node.name": name,
                "object.serial": serial,
                **props,
            }
        },
    }


def client(oid: int, **props: Any) -> dict[str, Any]:
    return {"id": oid, "type": "PipeWire:Interface:Client", "info": {"props": props}}


def link(oid: int, out_node: int, in_node: int) -> dict[str, Any]:
    return {
        "id": oid,
        "type": "PipeWire:Interface:Link",
        "info": {"output-node-id": out_node, "input-node-id": in_node},
    }


def default_metadata(sink: str, targets: dict[int, str] | None = None) -> dict[str, Any]:
    entries = [{"subject": 0, "key": "default.audio.sink", "value": {"name": sink}}]
    for subject, target in (targets or {}).items():
        entries.append({"subject": subject, "key": "target.object", "value": target})
    return {
        "id": 40,
        "type": "PipeWire:Interface:Metadata",
        "props": {"metadata.name": "default"},
        "metadata": entries,
    }


SPEAKERS = node(30, 130, "Audio/Sink", "speakers")
CAPTURE = node(31, 131, "Audio/Sink", "broadcaster.spotify")


def house(*extra: dict[str, Any], targets: dict[int, str] | None = None) -> Graph:
    return parse_dump([SPEAKERS, CAPTURE, default_metadata("speakers", targets), *extra])


def test_native_client_process_comes_from_the_client_object() -> None:
    graph = house(
        client(50, **{"application.process.id": 4242, "application.process.binary": "spotify"}),
        node(60, 160, "Stream/Output/Audio", "spotify", **{"client.id": 50}),
        link(70, 60, 30),
    )
    (stream,) = graph.streams
    assert (stream.pid, stream.binary, stream.serial) == (4242, "spotify", 160)
    assert [s.name for s in graph.sinks_of(stream)] == ["speakers"]
    assert graph.default_sink == "speakers"


def test_pulse_client_process_comes_from_the_node() -> None:
    graph = house(
        client(51, **{"application.process.id": 1}),
        node(
            61,
            161,
            "Stream/Output/Audio",
            "firefox",
            **{"client.id": 51, "application.process.id": 777, "application.name": "Firefox"},
        ),
    )
    (stream,) = graph.streams
    assert (stream.pid, stream.app_name) == (777, "Firefox")
    assert graph.sinks_of(stream) == []


def test_an_unlinked_stream_is_where_its_target_points() -> None:
    graph = house(node(62, 162, "Stream/Output/Audio", "x"), targets={62: "131"})
    (stream,) = graph.streams
    assert [s.name for s in graph.sinks_of(stream)] == ["broadcaster.spotify"]


def test_merge_dump_applies_later_updates_and_removals() -> None:
    first = [SPEAKERS, node(62, 162, "Stream/Output/Audio", "a"), node(63, 163, "Audio/Sink", "b")]
    text = json.dumps(first) + "\n" + json.dumps([{"id": 62, "info": None}]) + "\n"
    assert sorted(o["id"] for o in merge_dump(text)) == [30, 63]
    with pytest.raises(PipeWireError, match="not JSON"):
        merge_dump("[{]")
    with pytest.raises(PipeWireError, match="not a list"):
        merge_dump("{}")


def stream(oid: int, app: str, sink: int | None, **props: Any) -> list[dict[str, Any]]:
    objs = [node(oid, oid + 100, "Stream/Output/Audio", app, **{"application.name": app, **props})]
    if sink is not None:
        objs.append(link(oid + 1000, oid, sink))
    return objs


def test_plan_moves_only_the_target_and_remembers_where_it_was() -> None:
    graph = house(*stream(60, "Spotify", 30), *stream(61, "Other", 30))
    origins: dict[int, str] = {}
    moves = plan(graph, TargetApp("spotify"), "broadcaster.spotify", origins)
    assert [(m.stream.serial, m.to) for m in moves] == [(160, "broadcaster.spotify")]
    assert origins == {160: "speakers"}


def test_plan_leaves_streams_already_on_the_sink_and_forgets_gone_ones() -> None:
    origins = {160: "speakers", 999: "speakers"}
    graph = house(*stream(60, "Spotify", 31))
    assert plan(graph, TargetApp("spotify"), "broadcaster.spotify", origins) == []
    assert origins == {160: "speakers"}


def test_a_stream_routed_to_us_by_the_session_managers_memory_gets_the_apps_origin() -> None:
    # WirePlumber remembers an app's last sink: its next stream starts on ours.
    origins: dict[int, str] = {}
    graph = house(*stream(65, "Spotify", 31))
    plan(graph, TargetApp("spotify"), "broadcaster.spotify", origins, app_origin="hdmi")
    assert origins == {165: "hdmi"}


def test_a_stream_linked_to_two_sinks_mid_move_is_moved_again_unless_pending() -> None:
    graph = house(*stream(60, "Spotify", 30), link(2000, 60, 31))
    assert len(plan(graph, TargetApp("spotify"), "broadcaster.spotify", {})) == 1
    assert plan(graph, TargetApp("spotify"), "broadcaster.spotify", {}, pending={160}) == []


def test_dont_move_streams_are_left_alone() -> None:
    graph = house(*stream(60, "Spotify", 30, **{"node.dont-move": "true"}))
    assert plan(graph, TargetApp("spotify"), "broadcaster.spotify", {}) == []


def fake_proc(root: Path, pid: int, comm: str, ppid: int) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "comm").write_text(comm + "\n")
    (root / str(pid) / "stat").write_text(f"{pid} ({comm} x) S {ppid} 1 1 0 -1\n")


def test_target_by_pid_matches_child_processes(tmp_path: Path) -> None:
    fake_proc(tmp_path, 100, "chromium", 1)
    fake_proc(tmp_path, 150, "chromium-audio", 100)
    graph = house(*stream(60, "Chromium", 30, **{"application.process.id": 150}))
    (s,) = graph.streams
    assert process_lineage(150, str(tmp_path)) == [150, 100, 1]
    assert TargetApp(pid=100).matches(s, str(tmp_path))
    assert not TargetApp(pid=99).matches(s, str(tmp_path))


@pytest.mark.parametrize("name", ["spotify", "SPOTIFY", "spotify-bin", "Spotify Premium"])
def test_target_by_name_matches_app_name_binary_or_process_name(tmp_path: Path, name: str) -> None:
    fake_proc(tmp_path, 200, "spotify-bin", 1)
    graph = house(
        *stream(
            60,
            "Spotify Premium",
            30,
            **{"application.process.id": 200, "application.process.binary": "/opt/spotify"},
        )
    )
    (s,) = graph.streams
    assert TargetApp(name).matches(s, str(tmp_path))
    assert not TargetApp("spot").matches(s, str(tmp_path))


def test_sink_names_are_safe_node_names() -> None:
    assert sink_name_for(TargetApp("Spotify Premium!")) == "broadcaster.spotify_premium"
    assert sink_name_for(TargetApp(pid=42)) == "broadcaster.pid42"


def test_node_ids_and_serials_are_never_confused() -> None:
    # Node ids and serials are separate number spaces: here a sink's serial equals
    # the speakers' node id.  A link to node 30 is a link to the speakers.
    clash = node(32, 30, "Audio/Sink", "clash")
    graph = parse_dump([clash, SPEAKERS, CAPTURE, *stream(60, "Spotify", 30)])
    (s,) = graph.streams
    assert [sink.name for sink in graph.sinks_of(s)] == ["speakers"]
    # target.object holds a serial (or a name); target.node holds a node id.
    graph = parse_dump([clash, SPEAKERS, *stream(61, "A", None), default_metadata("x", {61: "30"})])
    assert [sink.name for sink in graph.sinks_of(graph.streams[0])] == ["clash"]


class _CountingRouter(Router):
    """The Router's event loop with the graph check replaced by a count."""

    def __init__(self) -> None:
        super().__init__(PipeWire(), TargetApp(name="app"), "broadcaster.app")
        self.checks = 0

    async def _check(self, rounds: int = 5) -> None:
        self.checks += 1


async def test_a_subscribe_line_over_the_reader_limit_does_not_stop_the_follower() -> None:
    """pactl's output is read in lines; one longer than asyncio's 64 KiB limit is skipped."""
    events = asyncio.StreamReader()  # the default limit, as a subprocess pipe has
    events.feed_data(b"Event 'new' on client #1\n")
    events.feed_data(b"Event 'change' on sink-input #7 " + b"x" * 300_000 + b"\n")
    events.feed_data(b"Event 'new' on sink-input #8\n")
    events.feed_eof()
    router = _CountingRouter()
    async with asyncio.timeout(10):
        await router._follow_events(events)  # returns at the end of the events
    # The first look, the cut line (it still names a sink-input), then the drain
    # that follows it consumed #8.
    assert router.checks == 2
    assert events.at_eof()


async def test_the_follower_stops_when_cancelled_as_an_event_arrives() -> None:
    """Python 3.11's asyncio.wait_for returned the result of a read that completed
    in the same loop turn as the cancellation, and dropped the cancellation: the
    follower went on forever and broadcaster ignored SIGTERM."""
    events = asyncio.StreamReader()
    router = _CountingRouter()
    task = asyncio.create_task(router._follow_events(events))
    for _ in range(100):  # past the first check, waiting for a line
        await asyncio.sleep(0)
    assert router.checks == 1
    events.feed_data(b"Event 'new' on client #1\n")  # the read completes on the next turn ...
    task.cancel()  # ... and so does the cancellation
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task


def test_a_sinks_state_is_pipewires_state_of_its_node() -> None:
    running = node(40, 400, "Audio/Sink", "broadcaster.x")
    running["info"]["state"] = "running"
    graph = parse_dump([SPEAKERS, running])
    assert graph.sink("broadcaster.x") is not None
    assert graph.sink("broadcaster.x").state == "running"  # type: ignore[union-attr]
    assert graph.sink("speakers").state == ""  # type: ignore[union-attr]
