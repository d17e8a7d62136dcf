"""Signals for the long-running commands (``run``, ``serve``).

SIGINT and SIGTERM ask for a clean stop (routing restored, sink removed).
SIGUSR1 logs what every asyncio task and every thread is doing, at WARNING,
without stopping anything: for a service that seems stuck
(``systemctl kill -s USR1 broadcaster``, then ``journalctl -u broadcaster``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Iterator

_LOGGER = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DUMP_SIGNAL = signal.SIGUSR1


@contextlib.contextmanager
def handled(stop: asyncio.Event) -> Iterator[None]:
    """While inside: SIGINT/SIGTERM set ``stop``, SIGUSR1 dumps the state to the log."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, _stop_requested, sig, stop)
    loop.add_signal_handler(DUMP_SIGNAL, dump_state)
    try:
        yield
    finally:
        for sig in (*STOP_SIGNALS, DUMP_SIGNAL):
            loop.remove_signal_handler(sig)


def _stop_requested(sig: signal.Signals, stop: asyncio.Event) -> None:
    _LOGGER.info("%s: stopping", sig.name)
    stop.set()


def _awaiting(task: asyncio.Task[object]) -> list[str]:
    """Where ``task`` waits: its await chain, outermost coroutine first."""
    lines = []
    step: object = task.get_coro()
    while step is not None:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return lines


def dump_state() -> str:
    """Log (and return) the stack of every asyncio task and every thread."""
    out = io.StringIO()
    tasks = sorted(asyncio.all_tasks(), key=lambda task: task.get_name())
    out.write(f"state dump: {len(tasks)} tasks, {threading.active_count()} threads\n")
    for task in tasks:
        out.write(f"task {task.get_name()}:\n")
        out.writelines(f"  {line}\n" for line in _awaiting(task))
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.write(f"thread {names.get(ident, ident)}:\n")
        out.write("".join(traceback.format_stack(frame, limit=8)))
    out.write("end of state dump")
    text = out.getvalue()
    _LOGGER.warning("%s", text)
    return text
