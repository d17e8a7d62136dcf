"""How long to wait before trying again: one capped exponential backoff.

Everything broadcaster retries (reopening snapserver's pipe, reconnecting a
tcp source or the control connection, restarting pw-record or snapserver,
reaching the session bus) waits with a :class:`Backoff`: the first delay,
doubling up to a cap, optionally with jitter, back to the first delay after a
success or after a run that lasted long enough to count as healthy.  The
policies are the constants below, in this one place; each retrying class takes
the whole :class:`Policy` it waits by (one of these by default), never a first
delay and a cap that would drop the rest of a policy on the way.

Sleep and clock are injectable, so tests need no real waiting.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .lifecycle import cancel_and_wait

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Policy:
    """``first`` s, doubling up to ``cap`` s; ``jitter`` adds up to that fraction at
    random (so many clients do not retry in step); a run that lasted
    ``healthy_after`` s starts the next wait from ``first`` again."""

    first: float
    cap: float
    jitter: float = 0.0
    healthy_after: float = math.inf

    def delay(self, attempt: int, draw: float = 0.0) -> float:
        """Seconds to wait before attempt number ``attempt`` (1-based); ``draw`` in [0, 1)."""
        base = min(self.cap, self.first * 2 ** max(0, attempt - 1))
        return float(min(self.cap, base * (1 + self.jitter * draw)))


PIPE_REOPEN = Policy(0.05, 0.5)
"""Reopening snapserver's fifo (it is local and comes back fast)."""
TCP_SOURCE = Policy(0.1, 2.0)
"""Reconnecting to a snapserver tcp source."""
CAPTURE_RESTART = Policy(0.2, 5.0, healthy_after=10.0)
"""Restarting pw-record after it stopped on its own."""
SINK_RESTART = Policy(0.2, 5.0, healthy_after=10.0)
"""Starting the native path's pipe sink again after its PipeWire client exited."""
SNAPSERVER_RESTART = Policy(0.5, 10.0, healthy_after=30.0)
"""Restarting the managed snapserver after it exited."""
CONTROL_RECONNECT = Policy(0.2, 5.0, jitter=0.1)
"""(Re)connecting the control connection to snapserver, the first time and after a loss."""
SESSION_BUS = Policy(1.0, 5.0)
"""The controlscript waiting for the D-Bus session bus to appear."""


class Backoff:
    """The state of one retry loop under a :class:`Policy`."""

    def __init__(
        self,
        policy: Policy,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._draw = draw
        self.attempts = 0
        """Failed attempts since the last success (what the next delay grows with)."""
        self._started: float | None = None

    def next(self) -> float:
        """The delay before the next attempt (and count this one as failed)."""
        self.attempts += 1
        return self.policy.delay(self.attempts, self._draw() if self.policy.jitter else 0.0)

    def reset(self) -> None:
        """A success: the next wait is the first delay again."""
        self.attempts = 0

    def started(self) -> None:
        """A run (of a child process, a connection) begins now."""
        self._started = self._clock()

    def ended(self) -> None:
        """The run begun at :meth:`started` ended; a long one counts as a success."""
        if self._started is not None and self._clock() - self._started >= self.policy.healthy_after:
            self.reset()
        self._started = None

    async def wait(self, wake: asyncio.Event | None = None) -> float:
        """Sleep the next delay (cut short when ``wake`` is set); returns the delay."""
        delay = self.next()
        await self.sleep(delay, wake)
        return delay

    async def sleep(self, delay: float, wake: asyncio.Event | None = None) -> None:
        """Sleep ``delay`` s with the injected sleep, cut short when ``wake`` is set."""
        if wake is None:
            await self._sleep(delay)
            return
        sleeping = asyncio.ensure_future(self._sleep(delay))
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, woken):
                await cancel_and_wait(task)
