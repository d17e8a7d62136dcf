"""Child processes: started with argument lists, watched, and always reaped.

Two shapes cover every child broadcaster starts:

* :func:`run_command` runs a short command (``pactl ...``, ``pw-dump``) with a
  deadline and returns its output; on timeout the child is killed and reaped.
* :class:`ChildProcess` is an async context manager for a long-lived child
  (``pw-record``, ``pactl subscribe``, ``snapserver``).  It keeps the last lines
  of the child's stderr for error messages, and on exit terminates, then kills,
  and always waits for the child.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from .lifecycle import Resource, cancel_and_wait

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    """What a finished short command printed, and how it exited."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe_failure(self) -> str:
        """One line naming the command and the last thing it said."""
        said = (self.stderr.strip() or self.stdout.strip()).splitlines()
        tail = said[-1] if said else f"exit status {self.returncode}"
        return f"{' '.join(self.argv[:3])} failed: {tail}"


async def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> CommandResult:
    """Run ``argv`` to completion within ``timeout`` seconds.

    Raises :class:`FileNotFoundError` when the program is not installed and
    :class:`TimeoutError` when it did not finish in time (it is killed first).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    try:
        async with asyncio.timeout(timeout):  # not wait_for: see broadcaster.lifecycle
            out, err = await proc.communicate(stdin)
    except BaseException:
        await _kill_and_reap(proc, argv[0])
        raise
    assert proc.returncode is not None
    return CommandResult(
        tuple(argv),
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
    )


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal a child that asyncio has not seen exit.

    ``os.kill``, not ``Process.send_signal``: the latter polls (and so reaps) a
    child that just exited, stealing it from asyncio's child watcher, which
    then reports "Unknown child process" and a made-up exit status.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


MAX_STDERR_LINE = 4096
"""Bytes of one stderr line kept for the log and error messages; the rest is skipped."""

REAP_TIMEOUT = 5.0
"""How long a SIGKILLed child may take to be reaped before broadcaster moves on."""


async def _kill_and_reap(proc: asyncio.subprocess.Process, name: str) -> None:
    """SIGKILL the child and reap it, without ever waiting for good.

    On Python 3.11 ``Process.wait()`` returns once the child has exited *and*
    its pipes are closed: output nobody reads any more is drained here (a
    paused pipe never sees its end), and a pipe that something else still
    holds open is given up on after :data:`REAP_TIMEOUT` (asyncio's child
    watcher still reaps the process).
    """
    _signal(proc, signal.SIGKILL)
    drains = [
        asyncio.ensure_future(_discard(stream))
        for stream in (proc.stdout, proc.stderr)
        if stream is not None
    ]
    try:
        async with asyncio.timeout(REAP_TIMEOUT):
            await asyncio.shield(proc.wait())
    except TimeoutError:
        _LOGGER.warning("%s was killed but its pipes stay open; not waiting for it", name)
        # Close our ends, or a 24/7 service leaks them (Process has no public close).
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()
    finally:
        for drain in drains:
            drain.cancel()


async def _discard(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(RuntimeError, OSError):  # RuntimeError: someone else reads it
        while await stream.read(65536):
            pass


async def read_line(stream: asyncio.StreamReader, keep: int) -> tuple[bytes, bool]:
    """The next line of ``stream`` (with its newline), ``b""`` at its end, and whether it was cut.

    A line longer than ``keep`` bytes, or than the reader's own limit, comes
    back cut to its first ``keep`` bytes; the rest of it is read and skipped.
    Unlike ``readline``, which raises on a line over the limit (64 KiB unless
    the reader was made with another), this never fails on what a line holds.
    Cancelled midway through skipping a long line, the next call returns the
    rest of that line as a line of its own.
    """
    try:
        line = await stream.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        line = err.partial  # the end of the stream
    except asyncio.LimitOverrunError as err:
        # ``consumed`` bytes are buffered and hold no newline: take them, skip the rest.
        head = await stream.readexactly(err.consumed)
        await _skip_line(stream)
        return head[:keep], True
    return line[:keep], len(line) > keep


async def _skip_line(stream: asyncio.StreamReader) -> None:
    """Read up to and including the next newline (or the end), keeping nothing."""
    while True:
        try:
            await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return
        except asyncio.LimitOverrunError as err:
            await stream.readexactly(err.consumed)
        else:
            return


async def read_lines(stream: asyncio.StreamReader, keep: int) -> AsyncIterator[tuple[bytes, bool]]:
    """Each line of ``stream`` (with its newline) until the end, and whether it was cut.

    Lines over ``keep`` bytes or the reader's limit are cut, as :func:`read_line` does.
    """
    while True:
        line, cut = await read_line(stream, keep)
        if not line:
            return
        yield line, cut


class ChildProcess(Resource):
    """A long-lived child process owned by an ``async with`` block.

    ``stdout`` is a pipe the owner reads (``read_stdout=True``), a file
    descriptor the owner passes (``stdout_fd``), or discarded.  ``stdin``, if
    given, is written to the child's stdin at start, which then stays open
    until the child is stopped (pw-cli reads commands from it).
    ``die_with_parent`` starts the child through ``setpriv --pdeathsig KILL``:
    the kernel kills it when broadcaster dies, even by SIGKILL (for children
    that hold something PipeWire must drop with broadcaster).
    stderr is drained by a task of this object into the log at DEBUG level; its
    last lines are kept in :attr:`stderr_tail` for error messages.
    """

    STOP_SHIELDED = True

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        read_stdout: bool = False,
        stdout_fd: int | None = None,
        stop_timeout: float = 3.0,
        tail_lines: int = 20,
        stdin: bytes | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.name = name or os.path.basename(argv[0])
        self.argv = (
            ("setpriv", "--pdeathsig", "KILL", "--", *argv) if die_with_parent else tuple(argv)
        )
        self._stdin = stdin
        self._env = dict(env) if env is not None else None
        self._read_stdout = read_stdout
        self._stdout_fd = stdout_fd
        self._stop_timeout = stop_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=tail_lines)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def stdout(self) -> asyncio.StreamReader:
        if self._proc is None or self._proc.stdout is None:
            raise RuntimeError(f"{self.name}: stdout is not captured")
        return self._proc.stdout

    def last_words(self) -> str:
        """The child's last stderr line, for an error message."""
        return self.stderr_tail[-1] if self.stderr_tail else "(it printed nothing)"

    async def start(self) -> None:
        """Start the child.  Raises :class:`FileNotFoundError` if it is not installed."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} already started")
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL if self._stdin is None else asyncio.subprocess.PIPE,
            stdout=self._stdout_fd
            if self._stdout_fd is not None
            else asyncio.subprocess.PIPE
            if self._read_stdout
            else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            # Own process group: a Ctrl-C in the terminal reaches broadcaster, which
            # then stops its children in order (restoring routing needs them alive).
            start_new_session=True,
        )
        _LOGGER.debug("started %s (pid %d): %s", self.name, self._proc.pid, " ".join(self.argv))
        if self._proc.stdin is not None and self._stdin is not None:
            self._proc.stdin.write(self._stdin)
        assert self._proc.stderr is not None
        self._stderr_task = asyncio.create_task(
            self._drain_stderr(self._proc.stderr), name=f"{self.name}-stderr"
        )

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        """Read stderr to its end, line by line; never stop early (the child
        would block on a full pipe).  Lines are cut at :data:`MAX_STDERR_LINE`."""
        async for line, cut in read_lines(stream, MAX_STDERR_LINE):
            self._stderr_line(line, cut=cut)

    def _stderr_line(self, line: bytes, *, cut: bool) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        if cut:
            text += " [line cut]"
        if text:
            self.stderr_tail.append(text)
            _LOGGER.debug("%s: %s", self.name, text)

    def terminate(self) -> None:
        """Send SIGTERM without waiting; the owner still calls :meth:`stop`."""
        if self._proc is not None:
            _signal(self._proc, signal.SIGTERM)

    async def wait(self) -> int:
        """Wait for the child to exit by itself; return its exit status."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        code = await self._proc.wait()
        if self._stderr_task is not None:
            # Let the last stderr lines land in stderr_tail before reporting.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(self._stderr_task)
        return code

    async def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after ``stop_timeout``) and reap."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            _signal(proc, signal.SIGTERM)
            try:
                async with asyncio.timeout(self._stop_timeout):
                    await asyncio.shield(proc.wait())
            except TimeoutError:
                _LOGGER.warning("%s did not stop on SIGTERM; killing it", self.name)
                await _kill_and_reap(proc, self.name)
        else:
            await _kill_and_reap(proc, self.name)  # exited: only its pipes are left
        if proc.stdin is not None:
            proc.stdin.close()
        await cancel_and_wait(self._stderr_task)
        self._stderr_task = None
