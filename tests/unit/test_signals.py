"""SIGUSR1's state dump: every task's await chain and every thread's stack."""

from __future__ import annotations

import asyncio
import threading

from broadcaster.cli.signals import dump_state


async def _parked(event: asyncio.Event) -> None:
    await event.wait()


def test_dump_shows_where_each_task_waits_and_each_thread() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="capture test", daemon=True)
    thread.start()

    async def main() -> str:
        event = asyncio.Event()
        task = asyncio.create_task(_parked(event), name="parked")
        await asyncio.sleep(0)
        try:
            return dump_state()
        finally:
            event.set()
            await task

    try:
        text = asyncio.run(main())
    finally:
        release.set()
    assert "task parked:" in text
    assert "in _parked" in text
    assert "in wait" in text  # down to asyncio.Event.wait, where it is parked
    assert "thread capture test:" in text
    assert text.endswith("end of state dump")
