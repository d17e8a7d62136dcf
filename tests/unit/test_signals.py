"""SIGUSR1's state dump: every task's await chain and every thread's stack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from broadcaster.cli.signals import dump_state

REPO = Path(__file__).resolve().parents[2]


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


INTERRUPTER = """
import os, signal, sys

class InterruptAt:
    '''Ctrl-C (a real SIGINT) the moment the named module starts to be imported.'''

    def find_spec(self, name, path=None, target=None):
        if name == os.environ["INTERRUPT_AT_IMPORT"]:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptAt())
"""


@pytest.mark.parametrize(
    "module",
    [
        "argparse",  # while the command line is being read
        "broadcaster.cli.pipeline",  # while the commands are registered
        "broadcaster.pipeline",  # in the command, before its signal handlers
    ],
)
def test_ctrl_c_while_starting_exits_130_without_a_traceback(tmp_path: Path, module: str) -> None:
    """A Ctrl-C right after Enter printed a KeyboardInterrupt traceback."""
    (tmp_path / "sitecustomize.py").write_text(INTERRUPTER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "INTERRUPT_AT_IMPORT": module,
        "XDG_RUNTIME_DIR": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", "from broadcaster.cli import run; run()", "run", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 130, result


def test_output_into_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    """`broadcaster status | head -3`: head exits first; that printed a BrokenPipeError."""
    read, write = os.pipe()
    os.close(read)  # the reader (head) has gone
    try:
        result = subprocess.run(
            [sys.executable, "-m", "broadcaster", "scene", "list"],
            env={**os.environ, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(tmp_path)},
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert result.stderr == ""
    assert result.returncode == 141  # as a program killed by SIGPIPE
