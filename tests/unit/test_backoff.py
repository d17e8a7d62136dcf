"""The one retry policy: capped doubling, jitter, reset after success or a healthy run."""

from __future__ import annotations

import asyncio

import pytest

from broadcaster.backoff import Backoff, Policy
from broadcaster.control import Reconnector, ReconnectState
from broadcaster.errors import ControlConnectionError


def test_delay_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    policy = Policy(0.5, 4.0, jitter=0.1)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 30)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.delay(1, draw=0.99) == pytest.approx(0.5 * 1.099)
    assert policy.delay(9, draw=0.99) == 4.0  # jitter never passes the cap


def test_success_and_a_healthy_run_start_again_from_the_first_delay() -> None:
    now = [0.0]
    backoff = Backoff(Policy(1.0, 8.0, healthy_after=10.0), clock=lambda: now[0])
    assert [backoff.next() for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    backoff.reset()
    assert backoff.next() == 1.0
    backoff.started()
    now[0] = 3.0
    backoff.ended()  # a short run: keep backing off
    assert backoff.next() == 2.0
    backoff.started()
    now[0] = 20.0
    backoff.ended()  # ran 17 s: healthy
    assert backoff.next() == 1.0


async def test_wait_uses_the_injected_sleep_and_a_wake_cuts_it_short() -> None:
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    backoff = Backoff(Policy(2.0, 16.0), sleep=sleep)
    assert await backoff.wait() == 2.0
    assert await backoff.wait() == 4.0
    assert slept == [2.0, 4.0]

    forever = Backoff(Policy(3600.0, 3600.0))  # the real sleep: only the wake can end it
    wake = asyncio.Event()
    waiting = asyncio.create_task(forever.wait(wake))
    await asyncio.sleep(0)
    wake.set()
    async with asyncio.timeout(5):
        assert await waiting == 3600.0


async def test_reconnector_sleeps_through_the_injected_sleep_and_begins_at_once() -> None:
    slept: list[float] = []
    attempts = 0
    connected = asyncio.Event()

    async def sleep(delay: float) -> None:
        slept.append(delay)

    async def connect() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ControlConnectionError("down")
        connected.set()

    reconnector = Reconnector(connect, policy=Policy(1.0, 2.0, jitter=0.1), sleep=sleep)
    reconnector.begin()
    async with asyncio.timeout(5):
        await connected.wait()
    await asyncio.sleep(0)
    assert reconnector.state is ReconnectState.CONNECTED
    assert attempts == 3
    assert len(slept) == 2  # the first attempt waited for nothing
    assert 1.0 <= slept[0] <= 1.1
    assert slept[1] == 2.0
    await reconnector.stop()


async def test_retry_now_ends_a_reconnect_wait() -> None:
    connected = asyncio.Event()

    async def connect() -> None:
        connected.set()

    reconnector = Reconnector(connect, policy=Policy(3600.0, 3600.0))
    reconnector.lost()
    await asyncio.sleep(0)
    assert reconnector.state is ReconnectState.WAITING
    reconnector.retry_now()
    async with asyncio.timeout(5):
        await connected.wait()
    await reconnector.stop()
