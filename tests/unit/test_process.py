"""Children are started with argument lists, stopped in order and always reaped."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from broadcaster import process
from broadcaster.process import ChildProcess, run_command
from tests.support.procs import wait_until


def alive(pid: int) -> bool:
    """True while ``pid`` exists, zombies included (a reaped child is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_run_command_returns_output_and_status() -> None:
    result = await run_command(
        [sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"], timeout=10
    )
    assert (result.returncode, result.stdout.strip(), result.ok) == (3, "hi", False)
    assert "failed" in result.describe_failure()


async def test_run_command_kills_on_timeout() -> None:
    with pytest.raises(TimeoutError):
        await run_command(["sleep", "30"], timeout=0.2)


async def test_stop_escalates_to_sigkill_and_reaps() -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    child = ChildProcess([sys.executable, "-c", stubborn], read_stdout=True, stop_timeout=0.3)
    async with child:
        assert await asyncio.wait_for(child.stdout.readline(), 10) == b"ready\n"
        pid = child.pid
        assert pid is not None
    assert child.returncode == -9
    assert not alive(pid)


async def test_stderr_tail_keeps_the_last_words() -> None:
    child = ChildProcess(
        [sys.executable, "-c", "import sys; sys.stderr.write('a\\nboom\\n'); sys.exit(2)"]
    )
    await child.start()
    assert await child.wait() == 2
    assert child.last_words() == "boom"
    await child.stop()


async def test_missing_program_is_file_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        await ChildProcess(["no-such-program-xyz"]).start()


async def test_a_command_whose_pipe_outlives_it_does_not_hang_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sh starts a grandchild that keeps stdout open, then outlives the timeout:
    # on Python 3.11 Process.wait() would wait for that pipe too (8 s here).
    monkeypatch.setattr(process, "REAP_TIMEOUT", 0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await run_command(["sh", "-c", "sleep 8 & exec sleep 20"], timeout=0.5)
    assert time.monotonic() - started < 5


async def test_a_stderr_line_over_64_kib_is_cut_and_draining_goes_on() -> None:
    """Were the drain to stop, the child would block on its full stderr pipe."""
    script = (
        "import sys\n"
        "sys.stderr.write('x' * 200_000 + '\\n')\n"  # three times the reader's limit
        "sys.stderr.write('y' * 70_000)\n"  # a long one that ends with the output
        "sys.stderr.write('\\nafter\\n' * 50_000)\n"  # more than a pipe holds
        "sys.stderr.write('bye\\n')\n"
    )
    child = ChildProcess([sys.executable, "-c", script], tail_lines=100_000)
    await child.start()
    try:
        async with asyncio.timeout(20):
            assert await child.wait() == 0
    finally:
        await child.stop()
    tail = list(child.stderr_tail)
    assert tail[0] == "x" * process.MAX_STDERR_LINE + " [line cut]"
    assert tail[1] == "y" * process.MAX_STDERR_LINE + " [line cut]"
    assert tail[2:] == ["after"] * 50_000 + ["bye"]


async def test_read_line_skips_only_the_over_long_line() -> None:
    """The newline of a line just over the limit is found in the buffer: the next line is kept."""
    stream = asyncio.StreamReader(limit=100)
    stream.feed_data(b"a" * 150 + b"\nnext\n" + b"b" * 1000 + b"\nlast")
    stream.feed_eof()
    lines = [await process.read_line(stream, 10) for _ in range(5)]
    assert lines == [
        (b"a" * 10, True),
        (b"next\n", False),
        (b"b" * 10, True),
        (b"last", False),
        (b"", False),
    ]


async def test_stdin_is_written_and_stays_open_until_stop() -> None:
    child = ChildProcess(["cat"], stdin=b"create-node\n", read_stdout=True)
    async with child:
        assert await asyncio.wait_for(child.stdout.readline(), 5) == b"create-node\n"
        await asyncio.sleep(0.1)
        assert child.running  # no EOF on its stdin: cat waits for more
    assert child.returncode is not None


async def test_a_child_that_dies_with_its_parent() -> None:
    """A grandchild started with die_with_parent is killed when its parent is SIGKILLed."""
    script = (
        "import asyncio, sys\n"
        "from broadcaster.process import ChildProcess\n"
        "async def main():\n"
        "    child = ChildProcess(['sleep', '60'], die_with_parent=True)\n"
        "    await child.start()\n"
        "    print(child.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    grandchild = int(await asyncio.wait_for(parent.stdout.readline(), 10))
    assert alive(grandchild)
    # setpriv arms the death signal, then execs sleep: kill the parent only
    # after that, or a loaded machine kills it first and nothing is armed.
    await asyncio.to_thread(
        wait_until, lambda: _comm(grandchild) == "sleep", 5, "setpriv to exec sleep"
    )
    parent.kill()
    await parent.wait()
    await asyncio.to_thread(
        wait_until, lambda: not _running(grandchild), 5, "the grandchild to die", interval=0.02
    )


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return False
    return text[text.rfind(")") + 2] != "Z"
