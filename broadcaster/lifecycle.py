"""Starting and stopping things: one shape for every owner.

:class:`Resource` makes ``async with thing:`` mean "start it, and always stop
it"; :func:`cancel_and_wait` is how an owner ends a task it started.

Deadlines are ``async with asyncio.timeout(...)``, never ``asyncio.wait_for``:
on Python 3.11 (Debian 12) wait_for returns the result of an operation that
completes in the same loop turn as a cancellation, and the cancellation is
lost.  A loop that retries (PipeWire gone: every pw-dump fails at once) then
never ends, and neither does broadcaster on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Self


class Resource:
    """An async context manager over :meth:`start` and :meth:`stop`.

    With :attr:`STOP_SHIELDED`, the stop on the way out runs to its end even
    when the task leaving the block is cancelled (a child is always reaped).
    """

    STOP_SHIELDED = False

    async def start(self) -> Any:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.STOP_SHIELDED:
            await asyncio.shield(self.stop())
        else:
            await self.stop()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
