"""The service's pure parts: slots, the managed snapserver's config, captures
with a scripted stand-in for Broadcast, level metering and underrun counting."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path
from typing import Any

import pytest

from broadcaster.claims import claim
from broadcaster.config import CaptureConfig, Config, DeliveryConfig, SnapserverConfig, WebConfig
from broadcaster.delivery import DeliveryStats
from broadcaster.errors import BusyError, ConfigError, ControlConnectionError, NotFoundError
from broadcaster.native import NativeStats
from broadcaster.pipeline import BroadcastStatus, Destination
from broadcaster.pipewire import TargetApp
from broadcaster.service import (
    ENDED_KEPT,
    Level,
    MeteredDelivery,
    Service,
    check_serving,
)
from broadcaster.snapserver import EmbeddedSnapserver, managed_slots, source_query


class StandIn:
    """Plays the part of a Broadcast: reports states, waits for stop, may fail."""

    def __init__(self, target: TargetApp, config: Config, fail: str = "") -> None:
        self.target = target
        self.config = config
        self.status = BroadcastStatus(target=target.describe())
        self.ready = asyncio.Event()
        self.meter: MeteredDelivery | None = None
        self.fail = fail
        self.stopped = False

    async def run(self, stop: asyncio.Event) -> None:
        if self.fail:
            raise ConfigError(self.fail)
        self.status.state = "playing"
        self.ready.set()
        await stop.wait()
        self.stopped = True
        self.status.state = "stopped"


class FakeDelivery:
    def __init__(self) -> None:
        self.stats = DeliveryStats()
        self.chunks: list[bytes] = []

    @property
    def target(self) -> str:
        return "fake"

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def run(self) -> None:
        return None


def pipes_status(*names: str) -> dict[str, Any]:
    return {
        "groups": [],
        "streams": [
            {"id": name, "status": "idle", "uri": {"scheme": "pipe", "path": f"/tmp/{name}"}}
            for name in names
        ]
        + [{"id": "radio", "status": "idle", "uri": {"scheme": "tcp", "path": ""}}],
    }


def make_service(**kwargs: Any) -> tuple[Service, list[StandIn]]:
    made: list[StandIn] = []

    def factory(target: TargetApp, config: Config, env: Any) -> StandIn:
        runner = StandIn(target, config, **kwargs)
        made.append(runner)
        return runner

    config = Config(server="127.0.0.1:1", snapserver=SnapserverConfig(mode="never"))
    service = Service(config, runner_factory=factory)
    service.snap.status = pipes_status("Main", "Second")
    return service, made


def test_managed_slots_name_one_pipe_per_slot(tmp_path: Path) -> None:
    config = Config(
        snapserver=SnapserverConfig(fifo=str(tmp_path / "fifo"), stream_name="house"),
        web=WebConfig(slots=3),
    )
    slots = managed_slots(config.snapserver, config.web.slots)
    assert [s.stream for s in slots] == ["house", "house-2", "house-3"]
    assert [s.fifo.name for s in slots] == ["fifo", "fifo-2", "fifo-3"]


def test_multi_config_has_a_source_per_slot_and_the_embedded_fields(tmp_path: Path) -> None:
    config = Config(
        snapserver=SnapserverConfig(fifo=str(tmp_path / "f"), control_port=4705, codec="pcm"),
        web=WebConfig(slots=2),
    )
    text = EmbeddedSnapserver(config.snapserver, slots=config.web.slots).render()
    sources = [line for line in text.splitlines() if line.startswith("source = ")]
    # Each stream gets the now-playing controlscript when it is installed.
    plugin = source_query()
    assert sources == [
        f"source = pipe://{tmp_path / 'f'}?name=broadcaster&mode=create"
        f"&sampleformat=48000:16:2&codec=pcm{plugin}",
        f"source = pipe://{tmp_path / 'f-2'}?name=broadcaster-2&mode=create"
        f"&sampleformat=48000:16:2&codec=pcm{plugin}",
    ]
    assert "port = 4705" in text
    assert "$XDG_RUNTIME_DIR" in text  # the escaped comment survives
    assert "${" not in text


async def test_a_stream_another_broadcaster_feeds_is_not_a_free_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`broadcaster run` feeding the first stream: the capture takes the next one
    (it took the first and failed, 'already fed by pid N')."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    service, _made = make_service()
    with claim(Destination(pipe="/tmp/Main").key(), "fed"):
        capture = await service.start_capture("spotify")
        assert capture.slot.stream == "Second"
        with pytest.raises(BusyError, match="already fed by another broadcaster"):
            await service.start_capture("firefox", stream="Main")
        with pytest.raises(BusyError, match="all 2 capture streams are in use"):
            await service.start_capture("firefox")
    await service.stop_capture(capture.id)


async def test_captures_take_free_streams_and_refuse_when_busy() -> None:
    service, made = make_service()
    first = await service.start_capture("spotify")
    app = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        second = await service.start_capture(pid=app.pid)
    finally:
        app.kill()
        await app.wait()
    assert (first.slot.stream, second.slot.stream) == ("Main", "Second")
    assert made[0].config.delivery.pipe == "/tmp/Main"
    assert made[0].config.snapserver.mode == "never"
    with pytest.raises(BusyError, match="all 2 capture streams are in use"):
        await service.start_capture("firefox")
    await asyncio.sleep(0)
    assert first.state == "playing"
    with pytest.raises(BusyError, match="already captured"):
        await service.start_capture("spotify")
    await service.stop_capture(first.id)
    assert made[0].stopped
    third = await service.start_capture("firefox", stream="Main")
    assert third.slot.stream == "Main"
    await service.stop()
    assert service.captures == {}


async def test_capture_input_errors() -> None:
    service, _ = make_service()
    with pytest.raises(ConfigError, match="not both"):
        await service.start_capture("a", pid=3)
    with pytest.raises(ConfigError, match="name the application"):
        await service.start_capture()
    with pytest.raises(NotFoundError, match="no pipe stream 'radio'"):
        await service.start_capture("a", stream="radio")
    with pytest.raises(NotFoundError, match="no capture '7'"):
        await service.stop_capture("7")
    service.snap.status = pipes_status()
    with pytest.raises(BusyError, match="no pipe stream on this machine"):
        await service.start_capture("a")


async def test_a_capture_while_the_server_has_not_answered_is_a_connection_error() -> None:
    """A snapserver that accepts but never answers (or is not there): not 'busy' (409) but
    'no connection yet' (503, as docs/api.md says), after waiting the control timeout."""
    config = Config(server="127.0.0.1:1", timeout=0.2, snapserver=SnapserverConfig(mode="never"))
    service = Service(config, runner_factory=lambda *args: StandIn(args[0], args[1]))
    with pytest.raises(ControlConnectionError, match="has not told its streams yet"):
        await service.start_capture("a")


async def test_a_failed_capture_keeps_its_error_and_frees_its_stream() -> None:
    service, _ = make_service(fail="no such app")
    topics: list[str] = []
    service.set_listener(topics.append)
    capture = await service.start_capture("ghost")
    assert capture.task is not None
    await capture.task
    assert capture.state == "failed"
    assert capture.describe()["error"] == "no such app"
    assert topics.count("captures") >= 2
    again = await service.start_capture("ghost")
    assert again.slot.stream == "Main"
    await service.stop()


async def test_sample_counts_underruns_while_playing() -> None:
    service, made = make_service()
    capture = await service.start_capture("app")
    await asyncio.sleep(0)
    assert service.sample()  # playing, nothing written yet: an underrun
    made[0].status.delivery.chunks_written = 50
    service.sample()
    assert capture.underruns == 1
    made[0].status.state = "waiting"
    service.sample()
    assert capture.underruns == 1
    await service.stop()


async def test_on_the_native_path_underruns_are_the_seconds_the_fifo_was_full() -> None:
    service, made = make_service()
    capture = await service.start_capture("app")
    await asyncio.sleep(0)
    made[0].status.path = "native"
    made[0].status.native = NativeStats(sink_state="running", stalled_seconds=3)
    service.sample()  # no chunks written: not an underrun of its own
    assert capture.underruns == 3
    assert capture.describe()["native"]["stalled_seconds"] == 3
    await service.stop()


def test_metered_delivery_measures_level() -> None:
    import numpy as np

    inner = FakeDelivery()
    meter = MeteredDelivery(inner)
    t = np.arange(960) / 48000
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    stereo = np.repeat(tone, 2).tobytes()
    meter.write(stereo)
    assert inner.chunks == [stereo]
    level = meter.sample()
    assert level.peak_db == pytest.approx(-6.0, abs=0.2)
    assert level.rms_db == pytest.approx(-9.0, abs=0.2)
    assert meter.sample() == Level()
    assert math.isinf(meter.level.rms_db)


def test_the_meter_measures_one_block_in_four() -> None:
    inner = FakeDelivery()
    meter = MeteredDelivery(inner)
    silent, loud = bytes(4096), b"\xff\x7f" * 2048
    for block in (silent, loud, loud, loud, loud):  # blocks 0 and 4 are measured
        meter.write(block)
    assert len(inner.chunks) == 5  # every block is delivered all the same
    level = meter.sample()
    assert level.peak_db == pytest.approx(0.0, abs=0.01)
    assert level.rms_db == pytest.approx(20 * math.log10(math.sqrt(0.5)), abs=0.01)


def test_check_serving_refuses_single_destination_settings() -> None:
    with pytest.raises(ConfigError, match="own snapserver pipe stream"):
        check_serving(Config(delivery=DeliveryConfig(pipe="/tmp/p")))
    with pytest.raises(ConfigError, match=r"capture\.sink"):
        check_serving(Config(capture=CaptureConfig(sink="aloop")))
    check_serving(Config())


async def test_init_and_broadcasters_own_ancestors_are_not_capture_targets() -> None:
    """A pid matches its descendants' streams: these would capture every app."""
    service, made = make_service()
    with pytest.raises(ConfigError, match="pid 1 is init"):
        await service.start_capture(pid=1)
    with pytest.raises(ConfigError, match="is broadcaster itself"):
        await service.start_capture(pid=os.getpid())
    with pytest.raises(ConfigError, match="an ancestor of broadcaster"):
        await service.start_capture(pid=os.getppid())
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    with pytest.raises(NotFoundError, match=f"there is no process {gone.pid}"):
        await service.start_capture(pid=gone.pid)
    assert made == []
    assert service.captures == {}


async def test_ended_captures_are_pruned_beyond_a_small_history() -> None:
    service, _ = make_service(fail="no such app")
    for _ in range(50):
        capture = await service.start_capture("ghost")
        assert capture.task is not None
        await capture.task
    assert len(service.captures) == ENDED_KEPT
    assert list(service.captures) == [str(n) for n in range(51 - ENDED_KEPT, 51)]  # the newest
    await service.stop()


async def test_a_stream_name_taken_meanwhile_is_skipped_and_the_added_stream_removed() -> None:
    """The one fault of adding streams the real snapserver 0.31 cannot be made to
    show on demand: another client takes the name between our status and our
    request.  The service tries the next name, and removes what it added."""
    from tests.support.fake_snapserver import Answer, FakeSnapserver, minimal_status
    from tests.support.procs import await_until

    status = minimal_status()
    status["server"].update(pipes_status("Main"))
    added: list[str] = []

    def add(params: dict[str, Any]) -> Answer:
        name = str(params["streamUri"]).split("name=")[1].split("&")[0]
        if name == "Main-2":  # taken by someone else just now
            return Answer(error={"code": -32603, "message": "Internal error"})
        added.append(name)
        return Answer(result={"id": name})

    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(result=status)
        fake.handlers["Stream.AddStream"] = add
        fake.handlers["Stream.RemoveStream"] = lambda p: Answer(result={"id": p["id"]})
        config = Config(server=f"127.0.0.1:{fake.port}", snapserver=SnapserverConfig(mode="never"))
        service = Service(config, runner_factory=lambda t, c, e: StandIn(t, c))

        async def following() -> bool:
            return service.snap.connected and bool(service.snap.status)

        await service.start()
        try:
            await await_until(following, 5, "the service to follow the fake")
            first = await service.start_capture("a")
            second = await service.start_capture("b")
            assert (first.slot.stream, second.slot.stream) == ("Main", "Main-3")
            assert second.slot.added
            assert second.slot.fifo == Path("/tmp/Main-3")
            await service.stop_capture(second.id)
            removed = [r["params"] for r in fake.requests if r["method"] == "Stream.RemoveStream"]
            assert removed == [{"id": "Main-3"}]
            assert service.can_add_streams is True
        finally:
            await service.stop()
    assert added == ["Main-3"]


async def test_a_capture_asked_right_after_start_up_waits_for_the_servers_streams() -> None:
    """The first POST /api/captures can come before the first status read."""
    service, _ = make_service()
    service.snap.status = None
    asked = asyncio.ensure_future(service.start_capture("spotify"))
    await asyncio.sleep(0.05)
    assert not asked.done()
    service.snap.status = pipes_status("Main")
    service.snap._up.set()  # what the first status read does
    capture = await asyncio.wait_for(asked, 2)
    assert capture.slot.stream == "Main"
