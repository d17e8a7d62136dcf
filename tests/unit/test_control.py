"""The control client's fixes to python-snapcast, on faults only a stand-in can produce.

(Everything a real snapserver can show is in tests/integration/test_control.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.backoff import Policy
from broadcaster.control import (
    CONNECT_EVENT,
    Event,
    Reconnector,
    ReconnectState,
    SnapControl,
)
from broadcaster.errors import (
    ControlConnectionError,
    ControlError,
    ControlTimeoutError,
    OutOfRangeError,
    ServerReplyError,
)
from broadcaster.snaprpc import SnapserverProtocol
from tests.support.fake_snapserver import (
    NON_ASCII_NAME,
    Answer,
    FakeSnapserver,
    minimal_status,
    status_cut_mid_character,
)
from tests.support.procs import await_until

KITCHEN = NON_ASCII_NAME


def _notification(name: str) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "method": "Client.OnNameChanged",
        "params": {"id": "x", "name": name},
    }
    return json.dumps(message, ensure_ascii=False).encode() + b"\r\n"


def test_utf8_split_across_reads_is_decoded() -> None:
    seen: list[dict[str, Any]] = []
    protocol = SnapserverProtocol(seen.append)
    data = _notification(KITCHEN) + _notification("zwei")
    cut = data.index("🎵".encode()) + 2  # inside the 4-byte emoji
    for piece in (data[:cut], data[cut : cut + 3], data[cut + 3 :]):
        protocol.data_received(piece)
    assert [m["params"]["name"] for m in seen] == [KITCHEN, "zwei"]


def test_a_line_is_parsed_even_when_the_read_does_not_end_in_crlf() -> None:
    seen: list[dict[str, Any]] = []
    protocol = SnapserverProtocol(seen.append)
    data = _notification("eins") + _notification("zwei")
    protocol.data_received(data[: len(_notification("eins")) + 5])
    assert [m["params"]["name"] for m in seen] == ["eins"]


def test_garbage_and_unknown_ids_do_not_break_the_protocol() -> None:
    seen: list[dict[str, Any]] = []
    protocol = SnapserverProtocol(seen.append)
    protocol.data_received(b"not json\r\n[1, 2]\r\n" + _notification("ok"))
    assert [m["params"]["name"] for m in seen] == ["ok"]


def test_a_huge_message_is_skipped_with_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("broadcaster.jsonrpc.MAX_MESSAGE_CHARS", 1 << 16)
    seen: list[dict[str, Any]] = []
    protocol = SnapserverProtocol(seen.append)
    protocol.data_received(_notification("before"))
    for _ in range(100):  # 6.4 MB of one line, a hundred times the bound
        protocol.data_received(b"x" * 65536)
        assert protocol._decoder.pending_chars <= 1 << 16
    protocol.data_received(b"tail of the huge line\r\n" + _notification("after"))
    assert [m["params"]["name"] for m in seen] == ["before", "after"]


async def test_split_reply_and_garbage_from_a_server() -> None:
    async with FakeSnapserver() as fake:
        status_cut_mid_character(fake, 2, [b"}{ garbage\r\n"])
        async with SnapControl("127.0.0.1", fake.port, timeout=3) as snap:
            assert (await snap.status()).room(KITCHEN).id == "room1"


async def test_error_reply_raises_and_nothing_is_swallowed() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Client.SetVolume"] = lambda _p: Answer(
            error={"code": -32603, "message": "Client not found"}
        )
        async with SnapControl("127.0.0.1", fake.port, timeout=3) as snap:
            with pytest.raises(ServerReplyError, match="Client not found"):
                await snap.set_room_volume("room1", 10)
            assert fake.requests[-1]["params"] == {"id": "room1", "volume": {"percent": 10}}


async def test_silent_server_times_out_on_connect_and_on_calls() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(silent=True)
        started = time.monotonic()
        with pytest.raises(ControlTimeoutError, match=r"within 0\.5 s"):
            await SnapControl("127.0.0.1", fake.port, timeout=0.5).connect()
        assert time.monotonic() - started < 2
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(result=minimal_status())
        fake.handlers["Client.SetName"] = lambda _p: Answer(silent=True)
        async with SnapControl("127.0.0.1", fake.port, timeout=0.5) as snap:
            with pytest.raises(TimeoutError):  # ControlTimeoutError is a TimeoutError too
                await snap.set_room_name("room1", "x")
            # The connection is still usable after a timed-out call.
            assert (await snap.status()).rooms[0].id == "room1"


async def test_hang_up_during_a_call_is_a_connection_error_not_a_timeout() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Group.SetMute"] = lambda _p: Answer(hang_up=True)
        async with SnapControl("127.0.0.1", fake.port, timeout=10) as snap:
            started = time.monotonic()
            with pytest.raises(ControlConnectionError):
                await snap.set_group_mute("g1", True)
            assert time.monotonic() - started < 5
            with pytest.raises(ControlConnectionError, match="not connected"):
                await snap.status()


async def test_malformed_status_is_a_control_error() -> None:
    async with FakeSnapserver() as fake, SnapControl("127.0.0.1", fake.port, timeout=2) as snap:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(result=[1, 2])
        with pytest.raises(ControlError, match="malformed"):
            await snap.status()


async def test_notifications_reach_callbacks_and_iterators() -> None:
    async with FakeSnapserver() as fake:
        snap = SnapControl("127.0.0.1", fake.port, timeout=2)
        called: list[Event] = []
        unsubscribe = snap.subscribe(called.append)
        async with snap:
            events = cast(AsyncGenerator[Event, None], snap.events())
            first = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0)  # let the iterator subscribe
            # An unknown client id makes python-snapcast's own handler fail: harmless here.
            await fake.notify(
                "Client.OnVolumeChanged",
                {"id": "nobody", "volume": {"percent": 3, "muted": False}},
                split_at=20,
            )
            event = await asyncio.wait_for(first, 5)
            assert event.method == "Client.OnVolumeChanged"
            assert event.params["id"] == "nobody"
            await events.aclose()
            unsubscribe()
        assert [e.method for e in called] == [CONNECT_EVENT, "Client.OnVolumeChanged"]


@dataclasses.dataclass
class Flaky:
    """What a :class:`Reconnector` connects to: it refuses its first ``down_for``
    attempts, and any attempt while ``up`` is false."""

    down_for: int = 0
    up: bool = True
    attempts: int = 0

    async def connect(self) -> None:
        self.attempts += 1
        if self.attempts <= self.down_for or not self.up:
            raise ControlConnectionError("down")


async def test_reconnector_backs_off_capped_and_stops() -> None:
    delays: list[float] = []
    server = Flaky(down_for=5)
    connect = server.connect

    class Recorded(Reconnector):
        def delay(self, attempt: int) -> float:
            delays.append(super().delay(attempt))
            return delays[-1]

    reconnector = Recorded(connect, policy=Policy(0.001, 0.004, jitter=0.1))
    reconnector.lost()
    reconnector.lost()  # a second loss while reconnecting starts nothing new

    async def connected() -> bool:
        return reconnector.state is ReconnectState.CONNECTED

    await await_until(connected, 5, "the reconnector to connect", interval=0.001)
    assert server.attempts == 6
    assert delays[0] < delays[1] < delays[2]
    assert all(d <= 0.004 for d in delays)
    assert [
        Reconnector(connect, policy=Policy(1, 8, jitter=0.1)).delay(n) // 1 for n in (1, 2, 3, 4, 9)
    ] == [
        1,
        2,
        4,
        8,
        8,
    ]
    await reconnector.stop()
    reconnector.lost()
    assert reconnector.state.value == "stopped"


def test_the_reconnector_waits_as_the_connections_policy_says_jitter_included() -> None:
    snap = SnapControl("127.0.0.1", 1705, reconnect=True, backoff=Policy(0.5, 2.0))
    assert snap.reconnector is not None
    assert [snap.reconnector.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]


async def test_reconnects_after_a_drop_also_after_close_and_reopen() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Group.SetMute"] = lambda _p: Answer(hang_up=True)
        snap = SnapControl("127.0.0.1", fake.port, timeout=2, reconnect=True)
        for _ in range(2):  # the second round: after close() and connect() again
            await snap.connect()
            with pytest.raises(ControlConnectionError):
                await snap.set_group_mute("g1", True)
            await snap.wait_connected(10)
            assert (await snap.status()).rooms[0].id == "room1"
            await snap.close()
            assert not snap.connected
        connects = [r for r in fake.requests if r["method"] == "Server.GetStatus"]
        assert len(connects) == 6  # connect + reconnect + one status, twice


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5),
    garbage=st.lists(st.binary(max_size=60).filter(lambda b: b"\n" not in b), max_size=3),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
)
def test_any_split_of_any_stream_keeps_every_valid_message(
    names: list[str], garbage: list[bytes], cuts: list[int]
) -> None:
    """Hostile framing (garbage lines, invalid UTF-8, arbitrary read boundaries)
    never drops the connection nor loses a well-formed message."""
    seen: list[dict[str, Any]] = []
    protocol = SnapserverProtocol(seen.append)
    data = b"".join(g + b"\r\n" for g in garbage) + b"".join(_notification(n) for n in names)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        protocol.data_received(data[start:end])
    assert [m["params"]["name"] for m in seen] == names


async def test_a_deeply_nested_message_is_skipped_and_the_connection_survives() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Server.GetStatus"] = lambda _p: Answer(
            result=minimal_status(), before=[b"[" * 100_000 + b"\r\n", b"{" * 50_000 + b"\r\n"]
        )
        async with SnapControl("127.0.0.1", fake.port, timeout=3) as snap:
            assert (await snap.status()).rooms[0].id == "room1"
            assert (await snap.status()).rooms[0].id == "room1"
            assert snap.connected


async def test_a_sighting_ends_the_wait_and_the_watch_runs_only_while_waiting() -> None:
    server = Flaky(up=False)
    connect = server.connect

    wakes: list[Callable[[], None]] = []
    exits = 0

    @contextlib.asynccontextmanager
    async def watch(wake: Callable[[], None]) -> AsyncIterator[None]:
        nonlocal exits
        wakes.append(wake)
        try:
            yield
        finally:
            exits += 1

    def waiting_an_hour(reconnector: Reconnector) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return reconnector.watching and reconnector.state is ReconnectState.WAITING

        return check

    reconnector = Reconnector(connect, policy=Policy(3600, 3600), watch=watch)
    reconnector.begin()  # the first attempt fails, then it waits an hour, watching
    await await_until(waiting_an_hour(reconnector), 5, "the reconnector to wait")
    assert (server.attempts, len(wakes), exits) == (1, 1, 0)
    server.up = True
    wakes[0]()  # the server announced itself
    await await_until(_state(reconnector, ReconnectState.CONNECTED), 5, "a reconnect")
    assert (server.attempts, exits, reconnector.watching) == (2, 1, False)

    reconnector.lost()  # a loss waits first, watching; stop() ends the watch too
    await await_until(waiting_an_hour(reconnector), 5, "the reconnector to wait again")
    await reconnector.stop()
    assert (server.attempts, len(wakes), exits, reconnector.watching) == (2, 2, 2, False)

    first_time = Reconnector(connect, policy=Policy(3600, 3600), watch=watch)
    first_time.begin()  # the server answers at once: nothing is watched
    await await_until(_state(first_time, ReconnectState.CONNECTED), 5, "a connection")
    assert (server.attempts, len(wakes)) == (3, 2)


async def test_a_watch_that_fails_leaves_the_backoff_to_reconnect() -> None:
    server = Flaky(down_for=2)

    def watch(wake: Callable[[], None]) -> contextlib.AbstractAsyncContextManager[None]:
        raise OSError("no multicast here")

    reconnector = Reconnector(server.connect, policy=Policy(0.001, 0.002), watch=watch)
    reconnector.lost()
    await await_until(_state(reconnector, ReconnectState.CONNECTED), 5, "a reconnect")
    assert server.attempts == 3


def _state(reconnector: Reconnector, state: ReconnectState) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return reconnector.state is state

    return check


async def test_latency_is_checked_once_here_and_the_applied_one_returned() -> None:
    async with FakeSnapserver() as fake:
        fake.handlers["Client.SetLatency"] = lambda p: Answer(
            result={"latency": max(-10000, min(400, p["latency"]))}  # snapserver's clamp
        )
        async with SnapControl("127.0.0.1", fake.port, timeout=2) as snap:
            assert await snap.set_room_latency("room1", -250) == -250
            assert await snap.set_room_latency("room1", 900) == 400  # its stream buffer
            for wrong in (-10001, 10001):
                with pytest.raises(OutOfRangeError, match="-10000 to 10000"):
                    await snap.set_room_latency("room1", wrong)
        sent = [r["params"]["latency"] for r in fake.requests if r["method"] == "Client.SetLatency"]
        assert sent == [-250, 900]
