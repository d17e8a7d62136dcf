"""Starting and stopping things: one shape for every owner.

:class:`Resource` makes ``async with thing:`` mean "start it, and always stop
it"; :func:`cancel_and_wait` is how an owner ends a task it started.
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
