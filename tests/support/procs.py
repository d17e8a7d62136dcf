"""Helpers for tests that run real processes: deadlines, free ports, reaping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


async def await_until(
    condition: Callable[[], Awaitable[T]], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Async twin of :func:`wait_until`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def cancelled_on_exit(task: asyncio.Task[T]) -> AsyncIterator[asyncio.Task[T]]:
    """``task`` for the block; cancelled, and awaited, when the block ends."""
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (dead, waiting to be reaped)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def command_line(pid: int) -> list[str]:
    """A process's argv, from /proc ([] once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def catches(pid: int, sig: int) -> bool:
    """Whether ``pid`` has a handler installed for ``sig`` (SigCgt in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def children(parent: int) -> list[int]:
    """Running processes whose parent is ``parent``."""
    found = []
    for pid in all_pids():
        stat = _stat(pid)
        if stat is not None and stat[1] == parent and stat[0] not in ("Z", "X"):
            found.append(pid)
    return found


def descendants(ancestor: int) -> list[int]:
    """Running processes below ``ancestor`` in the process tree."""
    parents: dict[int, int] = {}
    for pid in all_pids():
        stat = _stat(pid)
        if stat is not None and stat[0] not in ("Z", "X"):
            parents[pid] = stat[1]
    found = []
    for pid in parents:
        up = parents.get(pid)
        while up is not None and up != ancestor:
            up = parents.get(up)
        if up == ancestor:
            found.append(pid)
    return sorted(found)


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Have orphaned descendants re-parented to this process instead of init, so
    that :func:`descendants` still finds a process whose parent died."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_zombies() -> None:
    """Reap dead children nobody waits for (orphans a subreaper inherited)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


class Proc:
    """A background process for a test, logged to a file, killed and reaped on stop."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        env: dict[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log
        self._log = log.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=stdin,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 5.0) -> int:
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Daemon:
    """A harness object that runs one process at a time (``proc`` is None while stopped)."""

    proc: Proc | None = None

    def launch(self, proc: Proc, ready: Callable[[], object], timeout: float, what: str) -> None:
        """Run ``proc``; wait until ``ready()``, or fail with its log's tail if it exits first."""
        self.proc = proc
        wait_until(lambda: ready() or not proc.alive(), timeout, what)
        if not proc.alive():
            raise AssertionError(f"{what}: the process exited:\n{proc.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


def cli_env(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``env`` without BROADCASTER_* settings (a CLI child is configured by its
    arguments only), plus ``extra``."""
    return {k: v for k, v in env.items() if not k.startswith("BROADCASTER_")} | extra


@contextlib.contextmanager
def cli_child(
    env: Mapping[str, str], *args: str, stdout: int = subprocess.DEVNULL
) -> Iterator[subprocess.Popen[str]]:
    """``python -m broadcaster ARGS`` running with :func:`cli_env` of ``env``; its
    stderr is a text pipe.  Killed and reaped on exit if it is still running."""
    command = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", *args],
        env=cli_env(env),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield command
    finally:
        if command.poll() is None:
            command.kill()
        command.wait()
        if command.stderr is not None:
            command.stderr.close()
