"""Delivery into real fifos and sockets: never blocks, bounded, recovers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from broadcaster.backoff import Policy
from broadcaster.delivery import PipeDelivery, TcpDelivery, pipe_capacity_for
from tests.support.procs import await_until, cancelled_on_exit

CHUNK = 3840  # 20 ms of 48 kHz S16LE stereo
SOON = Policy(0.02, 0.05)
"""Retrying within a test's patience."""


def chunk(n: int) -> bytes:
    return bytes([n % 256]) * CHUNK


def running(delivery: PipeDelivery | TcpDelivery) -> AbstractAsyncContextManager[object]:
    return cancelled_on_exit(asyncio.create_task(delivery.run()))


@contextlib.asynccontextmanager
async def open_fifo(tmp_path: Path, **options: Any) -> AsyncIterator[tuple[Path, PipeDelivery]]:
    """A running :class:`PipeDelivery` on a new fifo, once it has the pipe open."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    delivery = PipeDelivery(str(fifo), **options)
    async with running(delivery):
        await await_until(lambda: _async(delivery.stats.connected), 5, "the pipe to open")
        yield fifo, delivery


def read_available(fd: int) -> bytes:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while block := os.read(fd, 65536):
            data += block
    return data


def test_pipe_capacity_is_a_power_of_two_pages_within_the_limit() -> None:
    assert pipe_capacity_for(19200) == 16384
    assert pipe_capacity_for(100) == os.sysconf("SC_PAGE_SIZE")


async def test_writes_reach_a_reader_that_opens_later(tmp_path: Path) -> None:
    async with open_fifo(tmp_path) as (fifo, delivery):
        delivery.write(chunk(1))  # nobody reads yet: held by the pipe, not lost
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            delivery.write(chunk(2))
            assert read_available(reader) == chunk(1) + chunk(2)
        finally:
            os.close(reader)
    assert delivery.stats.chunks_written == 2


async def test_a_stalled_reader_costs_drops_not_memory_or_blocking(tmp_path: Path) -> None:
    async with open_fifo(tmp_path, buffer_ms=100) as (fifo, delivery):
        for n in range(500):  # 10 s of audio with nobody reading
            delivery.write(chunk(n))
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            held = read_available(reader)
        finally:
            os.close(reader)
    # At most ~100 ms held: the pipe (shrunk to 16 KiB) plus a short queue.
    assert len(held) <= 19200 + CHUNK
    assert delivery.stats.chunks_dropped >= 490
    assert delivery.stats.chunks_written + delivery.stats.chunks_dropped <= 500


async def test_queued_audio_goes_out_as_soon_as_there_is_room(tmp_path: Path) -> None:
    """No waiting for the next block: the loop writes the queue out once the reader catches up."""
    async with open_fifo(tmp_path, buffer_ms=100) as (fifo, delivery):
        sent = b""
        n = 0
        while delivery.queued_bytes == 0:  # fill the 16 KiB pipe, then some
            delivery.write(chunk(n))
            sent += chunk(n)
            n += 1
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            got = read_available(reader)  # snapserver catches up
            await await_until(lambda: _async(delivery.queued_bytes == 0), 5, "the queue to drain")
            got += read_available(reader)
        finally:
            os.close(reader)
    assert got == sent
    assert delivery.stats.chunks_dropped == 0


async def test_waits_for_a_missing_fifo_then_delivers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = tmp_path / "fifo"
    delivery = PipeDelivery(str(fifo), reopen=SOON)
    caplog.set_level(logging.INFO, "broadcaster.delivery")
    async with running(delivery):
        await await_until(
            lambda: _async("create the pipe" in caplog.text), 5, "a log line about the wait"
        )
        delivery.write(chunk(1))
        assert delivery.stats.chunks_discarded == 1
        os.mkfifo(fifo)
        await await_until(lambda: _async(delivery.stats.connected), 5, "the pipe to open")
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            delivery.write(chunk(2))
            assert read_available(reader) == chunk(2)
        finally:
            os.close(reader)


async def test_never_writes_into_a_regular_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "snapfifo"
    path.write_bytes(b"precious")
    delivery = PipeDelivery(str(path), reopen=SOON)
    async with running(delivery):
        await await_until(lambda: _async("not a named pipe" in caplog.text), 5, "an error")
        delivery.write(chunk(1))
        assert not delivery.stats.connected
        # Fixed by the user (or snapserver) while broadcaster runs: it recovers.
        path.unlink()
        os.mkfifo(path)
        await await_until(lambda: _async(delivery.stats.connected), 5, "the pipe to open")
    assert caplog.text.count("not a named pipe") == 1  # said once, not every retry


async def test_unwritable_fifo_is_reported_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() == 0:
        # root ignores file modes; take write permission away with a directory instead.
        fifo = tmp_path / "missing-dir" / "fifo"
        delivery = PipeDelivery(str(fifo), reopen=SOON)
        async with running(delivery):
            await await_until(lambda: _async("waiting" in caplog.text), 5, "a wait message")
            assert not delivery.stats.connected
        return
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o400)
    delivery = PipeDelivery(str(fifo), reopen=SOON)
    async with running(delivery):
        await await_until(lambda: _async("no permission" in caplog.text), 5, "an error")
        fifo.chmod(0o600)
        await await_until(lambda: _async(delivery.stats.connected), 5, "the pipe to open")


async def test_a_replaced_fifo_is_reopened(tmp_path: Path) -> None:
    async with open_fifo(tmp_path, check_interval=0.05, reopen=SOON) as (fifo, delivery):
        fifo.unlink()
        os.mkfifo(fifo)  # a restarted snapserver made a new one
        await await_until(lambda: _async(delivery.stats.reconnects == 1), 5, "a reopen")
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            await await_until(lambda: _async(delivery.stats.connected), 5, "the pipe to open")
            delivery.write(chunk(7))
            assert read_available(reader) == chunk(7)
        finally:
            os.close(reader)


async def test_tcp_delivery_reconnects_after_the_server_drops_it() -> None:
    received: list[bytes] = []
    connections: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while data := await reader.read(65536):
            received.append(data)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    delivery = TcpDelivery("127.0.0.1", port, reconnect=SOON)
    try:
        async with running(delivery):
            await await_until(lambda: _async(delivery.stats.connected), 5, "a connection")
            delivery.write(chunk(1))
            await await_until(lambda: _async(b"".join(received) == chunk(1)), 5, "data")
            connections[0].close()  # snapserver restarts
            await await_until(lambda: _async(len(connections) == 2), 5, "a reconnect")
            await await_until(lambda: _async(delivery.stats.connected), 5, "connected again")
            delivery.write(chunk(2))
            await await_until(lambda: _async(b"".join(received).endswith(chunk(2))), 5, "data")
        assert delivery.stats.reconnects == 1
    finally:
        server.close()
        for writer in connections:
            writer.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "make",
    [
        lambda policy: PipeDelivery("/nonexistent/fifo", reopen=policy),
        lambda policy: TcpDelivery("127.0.0.1", 9, reconnect=policy),
    ],
    ids=["pipe", "tcp"],
)
async def test_a_delivery_retries_by_the_whole_policy_it_is_given(
    make: Callable[[Policy], PipeDelivery | TcpDelivery],
) -> None:
    # It used to take a first delay and a cap and build a Policy of its own
    # from them: a policy's jitter and healthy_after were lost on the way.
    policy = Policy(0.02, 0.05, jitter=0.5, healthy_after=3.0)
    assert make(policy)._backoff.policy == policy


async def test_tcp_delivery_drops_instead_of_buffering_without_bound() -> None:
    accepted = asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await asyncio.sleep(30)  # never reads

    server = await asyncio.start_server(stalled, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    delivery = TcpDelivery("127.0.0.1", port, buffer_ms=100)
    try:
        async with running(delivery):
            await asyncio.wait_for(accepted.wait(), 5)
            await await_until(lambda: _async(delivery.stats.connected), 5, "a connection")
            for n in range(3000):  # 60 s of audio: more than the socket buffers hold
                delivery.write(chunk(n))
                if n % 50 == 0:
                    await asyncio.sleep(0)
            assert delivery.stats.chunks_dropped > 0
            assert delivery.queued_bytes <= 19200
    finally:
        server.close()


async def _async(value: object) -> object:
    return value


async def test_never_follows_a_symbolic_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another user's link in a shared directory must not steer the audio anywhere."""
    elsewhere = tmp_path / "someone-elses-fifo"
    os.mkfifo(elsewhere)
    link = tmp_path / "snapfifo"
    link.symlink_to(elsewhere)
    delivery = PipeDelivery(str(link), reopen=SOON)
    async with running(delivery):
        await await_until(lambda: _async("symbolic link" in caplog.text), 5, "an error")
        assert not delivery.stats.connected
